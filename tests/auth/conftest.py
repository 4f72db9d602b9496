from tests.auth.support import (  # noqa: F401 - fixtures
    auth_enabled,
    make_group,
    make_user,
    reingest_allowed,
    seeded,
)
