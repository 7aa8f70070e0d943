"""A minimal WebSocket client over asyncio streams, for tests and benches against a real server
(the channels test communicator skips the server, and with it the server's own rules)."""

import asyncio
import base64
import os
import struct

CLOSE, PING = 0x8, 0x9


class Socket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int):
        self.reader, self.writer, self.status = reader, writer, status

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the server (server frames are not masked)."""
        head = await self.reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def close_code(self) -> int | str:
        """Skip messages until the server's close frame; its code, or "reset" when the connection
        ended without one."""
        try:
            while True:
                opcode, payload = await self.frame()
                if opcode == CLOSE:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (ConnectionResetError, asyncio.IncompleteReadError):
            return "reset"

    def send_text(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        length = len(data)
        if length < 126:
            head = struct.pack("!BB", 0x81, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def drop(self) -> None:
        self.writer.close()


async def connect(port: int, path: str, cookie: str = "") -> Socket:
    """Open `path` on 127.0.0.1:`port` with a same-origin header; `status` is the HTTP answer
    (101 when the handshake succeeded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://127.0.0.1:{port}",
    ] + ([f"Cookie: sessionid={cookie}"] if cookie else [])
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    return Socket(reader, writer, int(head.split(b" ", 2)[1]))
