"""permessage-deflate (RFC 7692) on `/ws/messages`, compressed once per group frame.

The fan-out sends the same frame to every socket of a group (fanout.py), as bytes encoded once.
A compressed frame can be shared the same way only if the server compresses every message on
its own, without a sliding window carried from one message to the next: the server declares
`server_no_context_takeover` in its handshake response, which RFC 7692 (7.1.1.1) lets it do
whether or not the client asked. The client then inflates each message with a fresh window, so
the bytes of a frame depend only on its text and the window size (`Frame.wire_for`).

simple-websocket 1.1.0 builds the extension in `Base._handle_events`, during the handshake, as
`PerMessageDeflate()` with no arguments, looking the module global
`simple_websocket.ws.PerMessageDeflate` up at call time; there is no option to pass arguments.
`install()` replaces that global with `SharedFrameDeflate`, which:

- always sets `server_no_context_takeover` (so wsproto writes it into the response, and resets
  its own compressor after each message that goes through `ws.send`: hello, ping, error never
  refer to data of another message, ours included);
- records itself in the WSGI environ of the request (the handshake runs in the handler's own
  thread or greenlet, inside the Flask request, before simple-websocket's reader starts), so the
  route knows whether deflate was negotiated and which window the client inflates with
  (`negotiated_window`).

If simple-websocket stops looking the global up (or the global holds another class, which
`install` then leaves alone with a warning), nothing is recorded and the route sends plain
frames (RSV1 clear is always allowed), while wsproto negotiates deflate for its own messages as
before: correct, only uncompressed. `tests/live/test_deflate.py` pins the patch (the handshake
response must carry `permessage-deflate` and `server_no_context_takeover`, the frames must
arrive compressed) and fails loudly if simple-websocket changes.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import MutableMapping
from typing import Any

import simple_websocket.ws
from flask import has_request_context, request
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

logger = logging.getLogger(__name__)

#: Where the handshake's extension object is kept for the route.
ENVIRON_KEY = "pacer.live.deflate"
#: zlib cannot produce raw deflate with an 8-bit window (wsproto refuses offers below 9 anyway).
MIN_WINDOW_BITS = 9


#: The most a client's compressed message may inflate to. A client of /ws/messages has nothing to
#: say (close and pong are control frames, never compressed); without a cap a few KB of deflate
#: would inflate ~1,000-fold into simple-websocket's buffer, which the route never reads.
MAX_INBOUND_BYTES = 64 * 1024


class SharedFrameDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, always with `server_no_context_takeover`, recorded in the
    current request's environ; a compressed client message beyond `MAX_INBOUND_BYTES` closes
    the socket (1009) before it is inflated further."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_no_context_takeover"] = True
        super().__init__(*args, **kwargs)
        self._inbound_bytes = 0
        if has_request_context():
            request.environ[ENVIRON_KEY] = self

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = MAX_INBOUND_BYTES - self._inbound_bytes
        try:
            # At most one byte past the cap (max_length 0 would mean no limit).
            out = self._decompressor.decompress(bytes(data), room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inbound_bytes += len(out)
        if self._inbound_bytes > MAX_INBOUND_BYTES or self._decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if fin and self._inbound_is_compressible:  # the end of a data message
            self._inbound_bytes = 0
        return super().frame_inbound_complete(proto, fin)


def install() -> None:
    """Make simple-websocket's servers negotiate `SharedFrameDeflate`. If its module no longer
    holds wsproto's class, leave it alone: the sockets then get plain frames (see above)."""
    current = getattr(simple_websocket.ws, "PerMessageDeflate", None)
    if current is SharedFrameDeflate:
        return
    if current is not PerMessageDeflate:
        logger.warning(
            "live: simple_websocket.ws.PerMessageDeflate is not wsproto's (%r): frames go out "
            "uncompressed; check webapp/live/deflate.py against this simple-websocket",
            current,
        )
        return
    simple_websocket.ws.PerMessageDeflate = SharedFrameDeflate


def negotiated_window(environ: MutableMapping[str, Any]) -> int | None:
    """The window bits this socket's client inflates our messages with, or None when the frames
    must go out plain (deflate not offered, not negotiated, or a window zlib cannot write)."""
    ext = environ.get(ENVIRON_KEY)
    if not isinstance(ext, SharedFrameDeflate) or not ext.enabled():
        return None
    if not ext.server_no_context_takeover:
        return None
    bits = ext.server_max_window_bits
    return bits if bits >= MIN_WINDOW_BITS else None
