from tests.messages.support import count_queries, write_reports  # noqa: F401 - fixtures
