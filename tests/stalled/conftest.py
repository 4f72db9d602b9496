from tests.stalled.support import NOW, runs  # noqa: F401 - fixtures
