"""The only module that talks to ChromaDB. Every call is named, bounded by a timeout, and turns
any failure into `ChromaUnavailable` after dropping the connection, so the next call reconnects.

Two modes (shared/NOTES.md, "ChromaDB"):

* `CHROMA_URL` set: an `HttpClient` to one `chroma run` server shared by every process. The
  recommended multi-process setup: the server serialises writes and readers see them at once.
* otherwise an embedded `PersistentClient` at `CHROMA_PATH`, which is thread-safe but not
  process-safe. We make it safe enough for one host by three rules:
  1. Lazy and per process: nothing is opened at import time; a client opened in another pid
     (i.e. before a fork) is never reused. A process forked *after* its parent opened the store
     may hang on any call, even with a fresh client (measured), so such a child fails fast.
  2. One writer at a time: writes hold an exclusive `flock` on the store, and only the index
     commands write; web and workers only read (and never create the store or a collection).
  3. Fresh reads: a long-lived client never sees other processes' writes, so every write bumps
     a version marker file in the store and readers reopen their client when it changed.

The public functions below are what the "chromadb" circuit breaker wraps, one line each.
"""

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings

from fortune_project.resilience.breakers import BreakerOpen, Ignored, get_breaker
from fortune_project.resilience.deadlines import call_with_timeout

log = logging.getLogger(__name__)
T = TypeVar("T")

MARKER_FILE = "fortune-index-version"
LOCK_FILE = "fortune-write.lock"
STORE_FILE = "chroma.sqlite3"


class ChromaUnavailable(Exception):
    """ChromaDB could not answer in time (down, slow, broken, or the index is missing)."""


class ChromaBreakerOpen(ChromaUnavailable, Ignored):
    """The chromadb breaker refused the call; Ignored, so the enclosing rag breaker does not count it."""


@dataclass
class Hit:
    id: str
    document: str
    metadata: dict
    distance: float


@dataclass
class Stored:
    id: str
    document: str
    metadata: dict
    embedding: list[float]


@dataclass
class _Connection:
    pid: int
    target: str
    client: Any
    marker: str = ""  # the embedded store's version when this client was opened
    collections: dict[str, Any] = field(default_factory=dict)


_connection: _Connection | None = None
_lock = threading.Lock()
# The pid that opened an embedded store, inherited across fork: a child compares it to its own.
_embedded_opened_in: int | None = None
# Connections inherited from a parent process, never freed here: destructors of native clients
# may wait on threads that only existed in the parent (as ONNX sessions do, measured).
_inherited: list[_Connection] = []


# --- Public calls: each one bounded by `timeout` seconds ------------------------------------


def heartbeat(timeout: float) -> int:
    return _run("heartbeat", timeout, lambda conn: conn.client.heartbeat())


def query(collection: str, embedding: list[float], *, n_results: int, where: dict | None, timeout: float) -> list[Hit]:
    """Nearest passages first; an empty list when nothing matches `where`."""

    def call(conn: _Connection) -> list[Hit]:
        result = _collection(conn, collection).query(
            query_embeddings=[embedding],
            n_results=n_results,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        columns = (result[key][0] for key in ("ids", "documents", "metadatas", "distances"))
        return [Hit(i, doc, dict(meta or {}), float(dist)) for i, doc, meta, dist in zip(*columns, strict=True)]

    return _run("query", timeout, call)


def get(collection: str, *, ids: list[str] | None = None, where: dict | None = None, timeout: float) -> list[Stored]:
    """Stored documents, metadata and vectors by id or metadata (no nearest-neighbour search);
    ids that are not indexed are left out."""

    def call(conn: _Connection) -> list[Stored]:
        found = _collection(conn, collection).get(
            ids=ids, where=where, include=["documents", "metadatas", "embeddings"]
        )
        columns = (found["ids"], found["documents"], found["metadatas"], found["embeddings"])
        return [
            Stored(i, doc, dict(meta or {}), [float(x) for x in vector])
            for i, doc, meta, vector in zip(*columns, strict=True)
        ]

    return _run("get", timeout, call)


def count(collection: str, timeout: float) -> int:
    return _run("count", timeout, lambda conn: _collection(conn, collection).count())


def list_ids(collection: str, timeout: float) -> list[str]:
    return _run("list_ids", timeout, lambda conn: _collection(conn, collection).get(include=[])["ids"])


def list_collections(timeout: float) -> list[str]:
    return _run("list_collections", timeout, lambda conn: [c.name for c in conn.client.list_collections()])


def upsert(
    collection: str,
    *,
    ids: list[str],
    embeddings: list[list[float]],
    documents: list[str],
    metadatas: list[dict],
    timeout: float,
    collection_metadata: dict | None = None,
) -> None:
    """Creates the collection (cosine space) on first use; only index writers call this."""

    def call(conn: _Connection) -> None:
        target = _collection(conn, collection, create=True, metadata=collection_metadata)
        target.upsert(ids=ids, embeddings=embeddings, documents=documents, metadatas=metadatas)

    _write("upsert", timeout, call)


def delete(collection: str, ids: list[str], timeout: float) -> None:
    """Removes these ids; ids that are not there are ignored (and so is a missing collection)."""
    if ids:
        _write("delete", timeout, lambda conn: _collection(conn, collection, create=True).delete(ids=ids))


def delete_collection(collection: str, timeout: float) -> bool:
    """True if it existed."""

    def call(conn: _Connection) -> bool:
        conn.collections.pop(collection, None)
        if collection not in {c.name for c in conn.client.list_collections()}:
            return False
        conn.client.delete_collection(collection)
        return True

    return _write("delete_collection", timeout, call)


def preload() -> None:
    """Import the chromadb package now, opening nothing. The web server calls this at start-up
    (rag/apps.py), before it freezes what start-up loaded (fortune_project/webserver.py).
    Imported by the first search instead, the package's ~43,000 objects stayed in the garbage
    collector's oldest generation for good, and every full collection walked them: measured,
    11-13 ms a collection on an idle process and one 46 ms stop of the event loop inside a burst
    of searches. The first search also no longer waits the ~0.5 s of the import.

    Within shared/NOTES.md's rule for Chroma (never touched at import time or in `ready()`, since a
    process that used a client and then forks hangs): it opens no client, and only the web server
    calls it, which never forks (its one child, the embedding process, is spawned)."""
    import chromadb  # noqa: F401


def reset_connection() -> None:
    """Forget this process's client (tests, and after settings change)."""
    _drop(None)


# --- Connection handling ----------------------------------------------------------------------


def embedded() -> bool:
    return not settings.CHROMA_URL


def _run(op: str, timeout: float, fn: Callable[[_Connection], T], *, writing: bool = False) -> T:
    """The one funnel: connect if needed, run under the timeout, drop the connection on failure."""
    _refuse_after_fork()
    seen: list[_Connection] = []

    def call() -> T:
        with _exclusive(writing, timeout):
            conn = _connect(writing)
            seen.append(conn)
            return fn(conn)

    try:
        if writing:  # operators' index writes are never refused by the breaker guarding reads
            return call_with_timeout(f"chromadb.{op}", timeout, call)
        return get_breaker("chromadb").call(call_with_timeout, f"chromadb.{op}", timeout, call)
    except BreakerOpen as exc:
        raise ChromaBreakerOpen(f"chromadb breaker is {exc.state}") from exc
    except ChromaUnavailable:
        _drop(seen[0] if seen else None)
        raise
    except Exception as exc:
        _drop(seen[0] if seen else None)
        log.warning("chromadb.%s failed: %s", op, exc)
        raise ChromaUnavailable(f"chromadb.{op}: {exc}") from exc


def _write(op: str, timeout: float, fn: Callable[[_Connection], T]) -> T:
    return _run(op, timeout, fn, writing=True)


@contextmanager
def _exclusive(writing: bool, timeout: float) -> Iterator[None]:
    """Embedded writes: one writer at a time, and readers told to reopen afterwards.

    Entered inside the timed thread, so a write abandoned by its caller keeps the lock until it
    really ends: no second writer can start beside it.
    """
    if not (writing and embedded()):
        yield
        return
    with _write_lock(Path(settings.CHROMA_PATH), timeout * 0.9):  # fail with our message first
        try:
            yield
        finally:
            _bump_marker()  # even after a failure: readers must see whatever was written


def _refuse_after_fork() -> None:
    if embedded() and _embedded_opened_in not in (None, os.getpid()):
        raise ChromaUnavailable(
            f"the embedded Chroma store was opened in pid {_embedded_opened_in} before this process was forked "
            "from it; it could hang here. Open it only after forking, or use CHROMA_URL."
        )


def _target() -> str:
    return settings.CHROMA_URL or str(Path(settings.CHROMA_PATH).resolve())


def store() -> str:
    """Names the store this process reads: a server's URL or the embedded store's path."""
    return _target()


def index_version() -> str:
    """Changes with every write to the embedded store ("" for a server, which has no marker)."""
    return _read_marker() if embedded() else ""


def _connect(writing: bool) -> _Connection:
    conn, target, pid = _connection, _target(), os.getpid()
    marker = _read_marker() if embedded() else ""
    if conn is not None and conn.pid == pid and conn.target == target and conn.marker == marker:
        return conn
    if conn is not None:
        _drop(conn)  # another process, another store, or a stale view of this one
    fresh = _Connection(pid, target, _open_client(target, writing), marker)
    return _install(fresh)


def _install(fresh: _Connection) -> _Connection:
    """Publish a new connection; if another thread got there first, keep theirs."""
    global _connection
    with _lock:
        if _connection is None:
            _connection = fresh
            return fresh
        winner = _connection
    _forget(fresh.client)
    return winner


def _drop(conn: _Connection | None) -> None:
    """Discard the connection (only if it is still the current one) without touching its client:
    a stuck call may still hold it, and in a forked child its sockets are the parent's."""
    global _connection
    with _lock:
        current = _connection
        if current is None or (conn is not None and current is not conn):
            return
        _connection = None
    if current.pid == os.getpid():
        _forget(current.client)
    else:
        _inherited.append(current)


def _open_client(target: str, writing: bool) -> Any:
    import chromadb
    from chromadb.config import Settings

    chroma_settings = Settings(anonymized_telemetry=False)
    if not embedded():
        return _http_client(chromadb, target, chroma_settings)
    path = Path(target)
    if not writing and not (path / STORE_FILE).exists():
        # Readers never create the store: concurrent first opens race (shared/NOTES.md).
        raise ChromaUnavailable(f"no index at {path}; run `manage.py rag_reindex`")
    global _embedded_opened_in
    _embedded_opened_in = os.getpid()
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def _http_client(chromadb: Any, url: str, chroma_settings: Any) -> Any:
    import httpx

    parts = urlsplit(url if "//" in url else f"http://{url}")
    ssl = parts.scheme == "https"
    client = chromadb.HttpClient(
        host=parts.hostname or "127.0.0.1", port=parts.port or (443 if ssl else 8000), ssl=ssl, settings=chroma_settings
    )
    # Chroma's httpx session has no timeout; ours abandons a stuck call, this one ends it.
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None:
        session.timeout = httpx.Timeout(max(settings.RAG_TIMEOUT, settings.RAG_INDEX_TIMEOUT))
    return client


def _forget(client: Any) -> None:
    """Remove a client's System from chromadb's process-wide cache (pinned chromadb 1.5.9).

    Without this, a new PersistentClient for the same path returns the same stale System, and
    every reconnecting HttpClient leaks one System. The System itself is left to the garbage
    collector rather than stopped: a call abandoned by its timeout may still be inside it.
    """
    from chromadb.api.shared_system_client import SharedSystemClient

    identifier = getattr(client, "_identifier", None)
    if identifier is None:
        return  # nothing was cached under it
    SharedSystemClient._identifier_to_system.pop(identifier, None)
    SharedSystemClient._identifier_to_refcount.pop(identifier, None)


def _collection(conn: _Connection, name: str, *, create: bool = False, metadata: dict | None = None) -> Any:
    cached = conn.collections.get(name)
    if cached is not None:
        return cached
    if create:
        found = conn.client.get_or_create_collection(
            name, configuration={"hnsw": {"space": "cosine"}}, metadata=metadata, embedding_function=None
        )
    else:
        found = conn.client.get_collection(name, embedding_function=None)
    conn.collections[name] = found
    return found


# --- The embedded store's version marker and write lock ---------------------------------------


def _marker_path() -> Path:
    return Path(settings.CHROMA_PATH) / MARKER_FILE


def _read_marker() -> str:
    try:
        return _marker_path().read_text()
    except FileNotFoundError:
        return ""


def _bump_marker() -> None:
    """A new random version, written atomically; our own client already holds the change."""
    version = uuid.uuid4().hex
    path = _marker_path()
    tmp = path.with_name(f".{MARKER_FILE}.{os.getpid()}")
    tmp.write_text(version)
    os.replace(tmp, path)
    with _lock:
        if _connection is not None and _connection.pid == os.getpid():
            _connection.marker = version


@contextmanager
def _write_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive flock on the store, polled so a busy writer costs us at most `timeout`."""
    import time

    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK_FILE, "a") as handle:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise ChromaUnavailable(f"another process is writing the index at {path}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
