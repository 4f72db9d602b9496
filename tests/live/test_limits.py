"""Socket slots: the per-process and per-client limits of /ws/messages (webapp/live/limits.py)."""

from __future__ import annotations

import pytest

from webapp.config import Settings
from webapp.live.limits import SocketLimitReached, SocketSlots, per_process_limit

pytestmark = pytest.mark.unit


def test_a_client_over_its_share_is_refused_and_a_closed_socket_frees_its_slot():
    slots = SocketSlots(per_process=10, per_client=2)
    with slots.slot("addr:1"), slots.slot("addr:1"):
        with pytest.raises(SocketLimitReached, match="limit per client"), slots.slot("addr:1"):
            pass
        with slots.slot("addr:2"):
            assert slots.open == 3
    assert slots.open == 0
    with slots.slot("addr:1"):
        pass


def test_the_process_limit_holds_across_clients():
    slots = SocketSlots(per_process=2, per_client=5)
    with slots.slot("a"), slots.slot("b"):
        with pytest.raises(SocketLimitReached, match="its limit"), slots.slot("c"):
            pass


@pytest.mark.parametrize(
    ("threads", "configured", "expected"),
    [(16, 0, 12), (4, 0, 2), (2, 0, 1), (16, 100, 14), (16, 5, 5)],
)
def test_sockets_never_take_every_thread(threads, configured, expected):
    settings = Settings.from_env(
        environ={
            "RMQ_HOST": "h",
            "ENVIRONMENT": "testing",
            "DISABLED_AUTH": "true",
            "WEB_THREADS": str(threads),
            "WS_MAX_PER_PROCESS": str(configured),
        }
    )
    assert per_process_limit(settings) == expected
