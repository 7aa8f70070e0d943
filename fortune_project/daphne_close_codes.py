"""Let the application close a WebSocket with the protocol's own codes (1003, 1011…) under Daphne.

The contract closes a socket that sent a frame with 1003 (shared/CONTRACT.md). Daphne hands an
ASGI `websocket.close` to autobahn's `sendClose`, which allows an application only 1000 and
3000-4999 (the browser API's rule) and raises on anything else: measured with daphne 4.2.3, the
close was lost and the socket stayed open until the ping timeout, ~50 s later. Daphne itself
sends 1011 through the lower `sendCloseFrame`; `install()` does the same for the RFC 6455 codes
a server may send, and leaves every other code to `sendClose` as before.
"""

PROTOCOL_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})  # RFC 6455 §7.4.1


def install() -> None:
    """Patch Daphne's WebSocket protocol once; harmless when Daphne is not the server."""
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol.serverClose, "protocol_codes", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self, code=None):
        if code in PROTOCOL_CODES:
            self.sendCloseFrame(code=code)
        else:
            original(self, code=code)

    server_close.protocol_codes = True  # type: ignore[attr-defined]
    WebSocketProtocol.serverClose = server_close
