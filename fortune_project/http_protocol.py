"""uvicorn's httptools protocol with a bound on the request line and headers, and JSON refusals.

uvicorn's httptools protocol buffers a request's URL and headers without a limit (measured: it
took 20 MB of headers on one connection and waited for more), so a careless or hostile client
could hold any amount of the web process's memory per connection; Daphne refused past 16 KiB.
`BoundedHttpToolsProtocol` counts the bytes of the request line's URL and of every header as
the parser hands them over, and the raw bytes of every read that falls wholly inside one
unfinished head (httptools keeps a header's value to itself until the value ends, so one huge
header would otherwise pass unseen); past WEB_MAX_HEADER_BYTES it answers 431
`request_header_too_large` and closes the connection. Any other request the parser cannot read
gets 400 `malformed_request`. Both bodies are the API's JSON error shape
(fortune_project/errors.py), since no Django code runs for them.
"""

import json

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fortune_project.errors import error_body

TOO_LARGE = (431, "request_header_too_large", "The request line and headers are too large.")
MALFORMED = (400, "malformed_request", "The request is not valid HTTP/1.1.")
REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class HeaderTooLarge(Exception):
    """Raised inside a parser callback; httptools hands it on as an HttpParserCallbackError."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    head_bytes = 0  # URL and header bytes of the current request, as parsed
    unfinished_bytes = 0  # raw bytes read while one head stayed unfinished
    heads_done = 0
    in_head = True  # between a request's end (or the connection's start) and its next head's end
    too_large = False

    def data_received(self, data: bytes) -> None:
        heads_before, was_in_head = self.heads_done, self.in_head
        super().data_received(data)
        if not (was_in_head and self.in_head) or self.heads_done != heads_before or self.transport.is_closing():
            return
        self.unfinished_bytes += len(data)  # no head ended in this read: all of it is head
        if self.unfinished_bytes > settings.WEB_MAX_HEADER_BYTES:
            self.too_large = True
            self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        self.heads_done += 1
        self.in_head, self.unfinished_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head = True
        super().on_message_complete()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > settings.WEB_MAX_HEADER_BYTES:
            self.too_large = True
            raise HeaderTooLarge

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this for any request the parser refused: answer in JSON, then close."""
        status, code, message = TOO_LARGE if self.too_large else MALFORMED
        body = json.dumps(error_body(code, message)).encode()
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
