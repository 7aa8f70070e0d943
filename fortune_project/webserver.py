"""The web server's command line: uvicorn serving `fortune_project.asgi:application`.

One place for it, so that `bin/up` (monitoring/supervisor.py), the tests and the benchmarks
run the web process the same way.

Why uvicorn (with httptools and uvloop) and not Daphne: every request's HTTP parsing and ASGI
hand-off runs on the process's one event loop, ahead of anything queued behind it. Measured
here (2 cores), 80 requests arriving at once and answered by a bare ASGI app took Daphne 12.8 ms
of loop time (160 µs each) and uvicorn 4.1 ms (50 µs each): a health poll that lands behind one
user's burst of searches waits that long. Channels runs under either; Daphne stays installed
for `manage.py runserver`.

The server's own limits, from settings read in this process (loud on bad values):
- no proxy headers: the client address is the socket's peer, so a client on this host cannot
  choose the IP the login throttle counts (behind a proxy, Django's own settings apply).
- WEB_MAX_HEADER_BYTES: a request line and headers past it get 431 and the connection closes
  (fortune_project/http_protocol.py; uvicorn alone would buffer them without a limit).
- WS_MAX_MESSAGE_BYTES: a larger WebSocket message closes the socket (1009);
  the consumers need a few hundred bytes at most.
- the garbage collector: what start-up loaded is frozen (`gc.freeze()`) before the first request,
  so a full collection does not stall the event loop and every request thread for ~0.1 s.
  Start-up first loads what the first requests would (`load_what_requests_import()`, and
  chromadb in rag/apps.py): left to them, it stayed in the collector's oldest generation.
- WEB_SHUTDOWN_TIMEOUT: on SIGTERM, open connections get that many seconds
  to finish, then are closed (every socket's work stops with it, chat/sockets.py).
"""

import argparse
import gc
import os
import sys

APPLICATION = "fortune_project.asgi:application"  # loaded by uvicorn, so nothing here imports it
STARTUP_FAILURE = 3  # uvicorn's own exit status when the server could not start
_serving = False


def serving() -> bool:
    """Whether this process is the web server started by main() below (not a task worker, a
    command or a test), for what only the web process does differently (rag/embedding_child.py)."""
    return _serving


def load_what_requests_import() -> None:
    """Import the URL conf, with every view module it names and what they import, and build its
    reverse lookup: the first requests would do it after the freeze below otherwise. Measured
    (a process after 20 each of submit, get, health and search): 47,700 objects left outside the
    frozen generation and full collections of 12-19 ms; with this and chromadb loaded at
    start-up, 4,500 objects and 1.5 ms."""
    from django.urls import get_resolver

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018  (imports ROOT_URLCONF and the views)
    resolver.reverse_dict  # noqa: B018  (what every reverse() reads)


def command(host: str, port: int) -> list[str]:
    """argv that serves the project on host:port in a process of its own."""
    return [sys.executable, "-m", "fortune_project.webserver", "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fortune_project.webserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    # Run as `python -m`, this file is `__main__`: the flag goes on the module the project imports.
    from fortune_project import webserver as imported

    imported._serving = True
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fortune_project.settings")
    import django
    import uvicorn
    from django.conf import settings

    django.setup()  # before uvicorn imports the protocol class, whose imports need the app registry

    config = uvicorn.Config(
        APPLICATION,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="fortune_project.http_protocol:BoundedHttpToolsProtocol",  # httptools, bounded
        ws="websockets-sansio",
        proxy_headers=False,
        ws_max_size=settings.WS_MAX_MESSAGE_BYTES,
        timeout_graceful_shutdown=settings.WEB_SHUTDOWN_TIMEOUT,
        access_log=settings.WEB_ACCESS_LOG,
    )
    config.load()  # imports the app: Django and every module it uses
    load_what_requests_import()
    # What start-up loaded lives as long as the process: out of the collector's reach, a full
    # collection no longer walks it. Measured: gen-2 pauses of 80-124 ms froze every request of
    # the process at once (the hung-LLM benchmark's 100-190 ms tail was exactly one of them).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
