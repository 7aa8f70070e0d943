"""Counts the database queries of each bench process (BENCH_QUERY_LOG set): one file per pid
holding its running total, rewritten at most every 0.25 s by a daemon thread, so `bench/run`
can measure the idle database load of the whole system from outside."""

import os
import threading
import time
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created

_counts: dict[int, int] = {}
_lock = threading.Lock()


def _flusher(directory: Path, pid: int) -> None:
    path, last = directory / str(pid), -1
    while True:
        count = _counts.get(pid, 0)
        if count != last:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(str(count))
            tmp.replace(path)
            last = count
        time.sleep(0.25)


def _counter(directory: Path) -> Any:
    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        pid = os.getpid()
        with _lock:
            if pid not in _counts:  # first query of this process (a forked worker included)
                _counts[pid] = 0
                threading.Thread(target=_flusher, args=(directory, pid), daemon=True).start()
            _counts[pid] += 1
        return execute(sql, params, many, context)

    return count


class BenchSiteConfig(AppConfig):
    name = "bench.site"
    label = "bench_site"

    def ready(self) -> None:
        directory = os.environ.get("BENCH_QUERY_LOG")
        if not directory:
            return
        wrapper = _counter(Path(directory))

        def install(sender: Any, connection: Any, **kwargs: Any) -> None:
            if wrapper not in connection.execute_wrappers:
                connection.execute_wrappers.append(wrapper)

        connection_created.connect(install, weak=False)
