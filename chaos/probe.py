"""The drills' API prober, a process of its own: clients asking for the public health and a task
(bench/load.py's Client, paced) until SIGTERM or `duration` seconds, then every request as JSON
on stdout (the rows of bench.load.Record)."""

import json
import signal
import sys
import threading
import time
from typing import Any

from bench.load import Budget, Client


def main() -> None:
    spec = json.loads(sys.argv[1])
    stop_at = time.time() + spec["duration"]
    outs: list[list[list[Any]]] = [[] for _ in range(spec["clients"])]
    clients = [Client(spec, n, outs[n], stop_at, Budget(spec["max_requests"])) for n in range(spec["clients"])]

    def stop(*_: object) -> None:
        for client in clients:
            client.stop_at = 0  # each ends after its request in flight

    signal.signal(signal.SIGTERM, stop)
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short joins, so the signal handler runs promptly
    json.dump([row for out in outs for row in list(out)], sys.stdout)


if __name__ == "__main__":
    main()
