from tests.auth.support import (  # noqa: F401,E402 - fixtures (API tokens, actions)
    auth_enabled,
    make_group,
    make_user,
    reingest_allowed,
    seeded,
)
from tests.messages.support import count_queries, write_reports  # noqa: F401 - fixtures
