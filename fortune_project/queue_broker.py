"""Django-Q2's ORM broker with a doorbell: a submit wakes the cluster at once instead of waiting
for its next poll (Q_CLUSTER["broker_class"] when QUEUE_WAKEUP is on, the default).

Why: the ORM broker's pusher sleeps QUEUE_POLL seconds whenever it finds the queue empty, so a
task waits up to that long before a worker sees it. Shortening the poll alone trades latency for
idle database load: measured on 2 cores (docs/benchmarks.md), fail-fast p95 was 243 ms at 0.2 s,
148 ms at 0.1 s (1.2x the idle queries/s) and still 109 ms at 0.05 s (1.6x); with this wake-up
it is 76 ms at the old 0.2 s poll's idle load.

How: each pusher binds a Unix datagram socket in a directory named after the queue's database
(so exactly the processes that share the queue share the directory) and, when the queue is
empty, waits on it for at most QUEUE_POLL seconds instead of sleeping. `enqueue()` (run by the
web process inside the task's own transaction, chat/submission.py) sends one byte to every
socket there, and the submit rings once more after the commit, when the row is visible. A bell
that rings early or late is harmless: the pusher queries the table either way, and the poll
stays the fallback, e.g. for clusters on other hosts of a shared PostgreSQL. Nothing here may
fail a submit or stop the pusher: every socket error falls back to polling.
"""

import hashlib
import logging
import os
import select
import socket
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

log = logging.getLogger(__name__)

_sender: tuple[int, socket.socket] | None = None  # (pid, socket): never reuse one across a fork


def bell_directory() -> Path:
    """/tmp/fortune-queue-<hash of the queue's database>: short enough for a socket path."""
    db = settings.DATABASES[Conf.ORM or "default"]
    identity = f"{db['ENGINE']}|{db.get('HOST', '')}|{db.get('PORT', '')}|{db['NAME']}|{Conf.CLUSTER_NAME}"
    return Path(tempfile.gettempdir()) / f"fortune-queue-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def ring() -> None:
    """Wake every pusher waiting on this queue (best effort, never raises)."""
    global _sender
    directory = bell_directory()
    try:
        names = os.listdir(directory)
    except OSError:
        return  # no pusher has waited yet: they poll
    if _sender is None or _sender[0] != os.getpid():
        _sender = (os.getpid(), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        _sender[1].setblocking(False)
    for name in names:
        path = directory / name
        try:
            _sender[1].sendto(b"!", str(path))
        except BlockingIOError:
            pass  # its buffer is full of rings: it will wake anyway
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)  # a pusher that is gone left its socket behind
        except OSError:
            pass


class WakeableORM(ORM):
    """The ORM broker; an empty queue waits on the doorbell for at most Conf.POLL seconds."""

    def __init__(self, list_key: str | None = None):
        super().__init__(list_key=list_key)
        self._bell: socket.socket | None = None
        self._bell_pid = 0

    def enqueue(self, task):
        task_id = super().enqueue(task)
        ring()
        return task_id

    def dequeue(self):
        # ORM.dequeue of django-q2 1.11.1, with its closing sleep(Conf.POLL) replaced by _wait.
        tasks = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())[0 : Conf.BULK]
        if tasks:
            task_list = []
            for task in tasks:
                claimed = self.get_connection().filter(id=task.id, lock=task.lock).update(lock=self.timeout(task))
                if claimed:  # else another cluster was faster
                    task_list.append((task.pk, task.payload))
            return task_list
        self._wait(Conf.POLL)
        return None

    def _wait(self, seconds: float) -> None:
        bell = self._listener()
        if bell is None:
            time.sleep(seconds)
            return
        try:
            ready, _, _ = select.select([bell], [], [], seconds)
            if ready:
                self._drain(bell)
        except OSError:
            log.warning("queue doorbell failed; polling every %s s", seconds, exc_info=True)
            self._close()
            time.sleep(seconds)

    @staticmethod
    def _drain(bell: socket.socket) -> None:
        """Empty the socket: one query answers every ring so far."""
        while True:
            try:
                bell.recv(64)
            except BlockingIOError:
                return

    def _listener(self) -> socket.socket | None:
        """This process's doorbell, bound on first use (in the pusher, after the fork); None
        when it cannot be bound (tried once per process)."""
        if self._bell_pid == os.getpid():
            return self._bell
        self._bell, self._bell_pid = None, os.getpid()
        directory = bell_directory()
        path = directory / str(os.getpid())
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            path.unlink(missing_ok=True)
            bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            bell.bind(str(path))
            bell.setblocking(False)
        except OSError as exc:
            log.warning("no queue doorbell at %s (%s); polling every %s s", path, exc, Conf.POLL)
            return None
        self._bell = bell
        return bell

    def _close(self) -> None:
        if self._bell is not None:
            self._bell.close()
            self._bell = None
