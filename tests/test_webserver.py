"""The web server (fortune_project/webserver.py) bounds what a client may make it buffer, and
answers what it refuses in the API's JSON error shape: no Django code runs for these."""

import json
import socket

import pytest

from fortune_project import webserver
from tests.support.processes import Process, base_env, free_port, port_open, run_manage, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("webserver")
    env = base_env(tmp_path, SECRET_KEY="test-only-" + "k" * 50, WEB_MAX_HEADER_BYTES="4096")
    assert run_manage(["migrate", "-v0"], env).returncode == 0
    port = free_port()
    process = Process(webserver.command("127.0.0.1", port), env, tmp_path / "web.log")
    try:
        wait_until(lambda: port_open(port), 60, what=f"the web server\n{process.log_path}")
        yield port
    finally:
        process.stop()


def exchange(port: int, raw: bytes) -> tuple[int, dict | None, bool]:
    """(status, JSON body or None, True once the server closed the connection) for raw bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(raw)
        except OSError:
            pass  # the server may close while mallory is still sending; its answer is read below
        data = b""
        while chunk := conn.recv(65536):  # every request here asks for a close after the answer
            data += chunk
        closed = True
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        return status, json.loads(body), closed
    except ValueError:
        return status, None, closed


def request(path: str = "/api/v1/async-chat/health", headers: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + headers + b"\r\n"


def test_alice_with_ordinary_headers_gets_her_answer(server):
    status, body, _ = exchange(server, request(headers=b"Cookie: " + b"a" * 2000 + b"\r\n"))
    assert status == 200 and "status" in body


def test_mallorys_oversized_headers_get_431_json_and_a_closed_connection(server):
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (n, b"a" * 500) for n in range(20))  # ~10 KB, limit 4 KB
    status, body, closed = exchange(server, request(headers=junk))
    assert (status, body["error"]["code"], closed) == (431, "request_header_too_large", True)


def test_a_megabyte_of_headers_is_cut_off_instead_of_buffered(server):
    """The server stops reading at the limit and closes; with most of mallory's megabyte still
    unsent, the close may reach her as a reset rather than after the 431."""
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (n, b"a" * 500) for n in range(2000))
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        with pytest.raises(OSError):  # a broken pipe or reset, long before the last byte
            conn.sendall(request(headers=junk))
            while conn.recv(65536):
                pass
            raise ConnectionResetError("closed after the answer")  # a clean close ends it too


def test_mallorys_oversized_url_gets_431_too(server):
    status, body, closed = exchange(server, request(path="/api/v1/async-chat/poems/search?q=" + "a" * 10_000))
    assert (status, body["error"]["code"], closed) == (431, "request_header_too_large", True)


def test_one_endless_header_value_is_cut_off_too(server):
    """httptools keeps a header's value until it ends; the raw reads are counted meanwhile."""
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        with pytest.raises(OSError):  # a broken pipe or reset, long before the last byte
            conn.sendall(request(headers=b"X-Junk: " + b"a" * 2_000_000 + b"\r\n"))
            while conn.recv(65536):
                pass
            raise ConnectionResetError("closed after the answer")  # a clean close ends it too


def test_alice_may_send_a_body_larger_than_the_header_bound(server):
    body = json.dumps({"username": "alice", "password": "x" * 300_000}).encode()
    head = b"POST /api/v1/auth/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    status, answer, _ = exchange(server, head + body)
    assert status != 431 and answer["error"]["code"] != "request_header_too_large"


def test_bytes_that_are_not_http_get_400_malformed_request_in_json(server):
    status, body, closed = exchange(server, b"HELLO THERE\r\n\r\n")
    assert (status, body["error"]["code"], closed) == (400, "malformed_request", True)
