"""A fault-injecting OpenAI-compatible server for tests and failure drills (`manage.py fake_llm`).

Endpoints: GET /v1/models, POST /v1/chat/completions (streaming and not), POST /v1/embeddings,
and a control endpoint: GET /control → mode, latency and call counts; POST /control with any of
{"mode", "latency", "chunk_delay", "embeddings_mode", "reset": true} changes them while it runs.

Chat modes:
  ok       a short reading in several chunks, `chunk_delay` apart
  slow     each chunk (the first too) after `latency` seconds
  hang     reads the request and never answers
  stall    sends two chunks, then nothing, never closing the stream
  drip     sends a byte of an SSE event every 0.2 s and never completes it
  error    HTTP 500 with an OpenAI-style error body
  flaky    alternates 500 and ok, starting with 500
  garbage  HTTP 200 with invalid SSE / JSON
  empty    a well-formed stream with no text
  huge     a well-formed reply of about 50,000 characters
Embeddings follow `embeddings_mode`, ok by default:
  ok       deterministic unit vectors, in input order
  hang     reads the request and never answers
  error    HTTP 500 with an OpenAI-style error body
  raw      the ok vectors scaled by index + 2 and listed in reverse: the client must sort and normalise
  garbage  HTTP 200 whose rows hold a string instead of a vector
"""

import hashlib
import json
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

MODES = ("ok", "slow", "hang", "stall", "drip", "error", "flaky", "garbage", "empty", "huge")
EMBEDDINGS_MODES = ("ok", "hang", "error", "raw", "garbage")
MODEL = "fake-llm"
EMBEDDING_DIMENSIONS = 384

READING = (
    "The poem you drew speaks of patience. "
    "Its lantern does not hurry the boats home; it simply keeps burning. "
    "For your question, this suggests steady effort rather than a sudden leap. "
    "Prepare quietly, ask for advice from someone you trust, and let the right moment come to you. "
    "What is meant for you will find the light you keep."
)
HUGE_PARAGRAPH = "The tide returns to the harbour in its own time, and so will your answer. " * 700


@dataclass
class State:
    """Mode and counters, shared by the handler threads."""

    mode: str = "ok"
    latency: float = 1.0
    chunk_delay: float = 0.05
    embeddings_mode: str = "ok"
    calls: Counter[str] = field(default_factory=Counter)
    last_request: dict | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "mode": self.mode,
                "latency": self.latency,
                "chunk_delay": self.chunk_delay,
                "embeddings_mode": self.embeddings_mode,
                "calls": dict(self.calls),
                "last_request": self.last_request,
            }

    def update(self, changes: dict) -> None:
        """Apply a control request; raises ValueError on an unknown mode or a bad number."""
        mode, emb = changes.get("mode", self.mode), changes.get("embeddings_mode", self.embeddings_mode)
        if mode not in MODES or emb not in EMBEDDINGS_MODES:
            raise ValueError(f"mode must be one of {MODES}, embeddings_mode one of {EMBEDDINGS_MODES}")
        latency = float(changes.get("latency", self.latency))
        chunk_delay = float(changes.get("chunk_delay", self.chunk_delay))
        with self.lock:
            self.mode, self.embeddings_mode, self.latency, self.chunk_delay = mode, emb, latency, chunk_delay
            if changes.get("reset"):
                self.calls.clear()
                self.last_request = None

    def count(self, name: str) -> int:
        with self.lock:
            self.calls[name] += 1
            return self.calls[name]


def split_words(text: str, pieces: int) -> list[str]:
    """`text` cut at word boundaries into about `pieces` chunks that join back to it."""
    words = text.split(" ")
    size = max(1, math.ceil(len(words) / pieces))
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [g + (" " if i < len(groups) - 1 else "") for i, g in enumerate(groups)]


def chunk_event(text: str | None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"role": "assistant", "content": text}
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def completion_body(text: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector derived from the text's hash (same text, same vector)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw += [(b - 127.5) / 127.5 for b in digest]
        counter += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeLLMServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's signature)
        log.info("%s %s", self.address_string(), format % args)

    @property
    def state(self) -> State:
        return self.server.state

    # --- routing ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self.state.count("models")
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]})
        elif self.path.rstrip("/") == "/control":
            self.send_json(200, self.state.snapshot())
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        body = self.read_json()
        route = self.path.rstrip("/")
        if body is None:
            self.send_json(400, {"error": {"message": "body must be JSON", "type": "invalid_request_error"}})
        elif route == "/control":
            self.control(body)
        elif route == "/v1/chat/completions":
            self.chat(body)
        elif route == "/v1/embeddings":
            self.embeddings(body)
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    # --- endpoints -------------------------------------------------------------------------
    def control(self, body: dict) -> None:
        try:
            self.state.update(body)
        except (TypeError, ValueError) as exc:
            self.send_json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        self.send_json(200, self.state.snapshot())

    def chat(self, body: dict) -> None:
        stream = bool(body.get("stream"))
        number = self.state.count("chat_stream" if stream else "chat")
        with self.state.lock:
            self.state.last_request = body
            mode, latency, delay = self.state.mode, self.state.latency, self.state.chunk_delay
        if mode == "flaky":
            mode = "error" if self.flaky_number() % 2 == 1 else "ok"
        if mode == "hang":
            self.hang()
        elif mode == "error":
            self.send_json(500, {"error": {"message": "fake_llm: injected failure", "type": "server_error"}})
        elif mode == "garbage":
            self.garbage(stream)
        elif stream:
            self.stream_reply(mode, latency, delay)
        else:
            self.whole_reply(mode, latency)
        log.debug("chat call %d answered in mode %s", number, mode)

    def embeddings(self, body: dict) -> None:
        self.state.count("embeddings")
        mode = self.state.embeddings_mode
        if mode == "hang":
            self.hang()
            return
        if mode == "error":
            self.send_json(500, {"error": {"message": "fake_llm: injected failure", "type": "server_error"}})
            return
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        dims = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = [
            {"object": "embedding", "index": i, "embedding": self.vector(mode, str(t), i, dims)}
            for i, t in enumerate(texts)
        ]
        if mode == "raw":
            data.reverse()
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        self.send_json(200, {"object": "list", "data": data, "model": body.get("model", MODEL), "usage": usage})

    # --- behaviours ------------------------------------------------------------------------
    def vector(self, mode: str, text: str, index: int, dimensions: int) -> list[float] | str:
        """The row's embedding: a unit vector, scaled in raw mode, a string in garbage mode."""
        if mode == "garbage":
            return "not a vector"
        vector = embedding(text, dimensions)
        return [v * (index + 2) for v in vector] if mode == "raw" else vector

    def flaky_number(self) -> int:
        return self.state.count("flaky")

    def hang(self) -> None:
        """Hold the connection open without a byte until the server stops."""
        self.state.stopping.wait()
        self.close_connection = True

    def garbage(self, stream: bool) -> None:
        if stream:
            self.start_stream()
            self.write_chunk(b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "Th\n\n')
            self.write_chunk(b"data: \x00\xff not json at all }}\n\n")
            self.end_stream()
        else:
            payload = b'{"choices": [{"message": {"content": "unterminated'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def reply_text(self, mode: str) -> str:
        return {"empty": "", "huge": HUGE_PARAGRAPH}.get(mode, READING)

    def whole_reply(self, mode: str, latency: float) -> None:
        if mode in ("slow", "stall", "drip"):
            self.sleep(latency if mode == "slow" else 3600)
        self.send_json(200, completion_body(self.reply_text(mode)))

    def stream_reply(self, mode: str, latency: float, delay: float) -> None:
        self.start_stream()
        if mode == "drip":
            self.drip()
            return
        pieces = split_words(self.reply_text(mode), 200 if mode == "huge" else 10)
        for index, piece in enumerate(pieces):
            if mode == "stall" and index == 2:
                self.sleep(3600)  # the connection stays open; the client must give up
                return
            self.sleep(latency if mode == "slow" else delay)
            if not self.write_chunk(chunk_event(piece)):
                return
        self.write_chunk(chunk_event(None, finish="stop"))
        self.write_chunk(b"data: [DONE]\n\n")
        self.end_stream()

    def drip(self) -> None:
        for byte in b'data: {"choices": [{"delta": {"content": "' * 1000:
            if not self.write_chunk(bytes([byte])) or not self.sleep(0.2):
                return

    # --- HTTP plumbing ---------------------------------------------------------------------
    def sleep(self, seconds: float) -> bool:
        """Wait, but wake when the server stops; False if it did."""
        return not self.state.stopping.wait(seconds)

    def read_json(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def send_json(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> bool:
        """One HTTP chunk, flushed at once; False when the client has gone away."""
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class FakeLLMServer(ThreadingHTTPServer):
    daemon_threads = True  # hung handlers must not keep the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State) -> None:
        super().__init__(address, Handler)
        self.state = state

    def shutdown(self) -> None:
        self.state.stopping.set()
        super().shutdown()


def make_server(
    host: str, port: int, mode: str = "ok", latency: float = 1.0, chunk_delay: float = 0.05
) -> FakeLLMServer:
    state = State()
    state.update({"mode": mode, "latency": latency, "chunk_delay": chunk_delay})
    return FakeLLMServer((host, port), state)
