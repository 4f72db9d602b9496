from tests.auth.support import auth_enabled, make_group, make_user  # noqa: F401 - fixtures
from tests.messages.support import write_reports  # noqa: F401 - fixtures
from tests.stalled.support import NOW, runs  # noqa: F401 - fixtures
