"""PostgreSQL connection pools (Django's `OPTIONS["pool"]`, psycopg_pool) across fork().

Django keeps one pool per process in a class attribute, so a process forked after it connected
(Django-Q2's workers, forked by the cluster) would inherit its parent's pool: the same sockets,
used by two processes at once. After a fork the child forgets every inherited pool and
connection without closing them (closing would end the parent's sessions on the server), and
opens its own on first use.
"""

import os
import sys
from typing import Any

_inherited: list[Any] = []  # kept, never closed nor collected: they are the parent's
_installed = False


def forget_inherited() -> None:
    """In a forked child: drop the parent's pools and the connection this thread held."""
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return
    pools = backend.DatabaseWrapper._connection_pools
    if pools:
        _inherited.append(dict(pools))
        pools.clear()
    from django.db import connections

    for wrapper in connections.all(initialized_only=True):
        if wrapper.vendor == "postgresql" and wrapper.connection is not None:
            _inherited.append(wrapper.connection)
            wrapper.connection = None


def install() -> None:
    """Once per process (settings call it when pools are on)."""
    global _installed
    if not _installed:
        os.register_at_fork(after_in_child=forget_inherited)
        _installed = True
