"""The ORM broker's doorbell (fortune_project/queue_broker.py): a submit wakes a waiting pusher
at once; without a pusher, or with a dead one's socket left behind, a ring costs nothing."""

import socket
import threading
import time

import pytest
from django_q.conf import Conf

from fortune_project import queue_broker
from fortune_project.queue_broker import WakeableORM, ring

pytestmark = pytest.mark.django_db  # the broker's constructor checks its database connection


@pytest.fixture
def broker(tmp_path, monkeypatch):
    monkeypatch.setattr(queue_broker, "bell_directory", lambda: tmp_path / "bells")
    return WakeableORM(list_key="bell-test")


def waits_for(broker: WakeableORM, seconds: float) -> float:
    """Seconds an empty-queue wait took while another thread rings after 0.2 s."""
    threading.Timer(0.2, ring).start()
    started = time.monotonic()
    broker._wait(seconds)
    return time.monotonic() - started


def test_a_ring_ends_the_wait_at_once(broker):
    assert broker._listener() is not None  # bound, as the pusher's first empty poll does
    assert waits_for(broker, 10) < 5  # 0.2 s plus scheduling on a busy machine, not 10 s


def test_without_a_ring_the_wait_is_the_poll(broker):
    started = time.monotonic()
    broker._wait(0.3)
    assert 0.25 < time.monotonic() - started < 5


def test_many_rings_are_answered_by_one_wake_up(broker):
    broker._listener()
    for _ in range(50):
        ring()
    broker._wait(5)
    started = time.monotonic()
    broker._wait(0.3)  # the socket was drained: this one waits out its poll
    assert time.monotonic() - started >= 0.25


def test_ringing_with_no_pusher_does_nothing(broker):
    ring()  # no directory yet
    queue_broker.bell_directory().mkdir()
    ring()  # an empty one


def test_a_dead_pushers_socket_is_removed(broker, tmp_path):
    directory = queue_broker.bell_directory()
    directory.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "12345"))
    dead.close()
    ring()
    assert not (directory / "12345").exists()


def test_enqueue_rings(broker):
    broker._listener()
    task_id = broker.enqueue("payload")
    started = time.monotonic()
    broker._wait(10)
    assert time.monotonic() - started < 5
    assert broker.dequeue()[0][0] == task_id


def test_the_directory_is_named_after_the_queues_database():
    name = queue_broker.bell_directory().name
    assert name.startswith("fortune-queue-") and len(str(queue_broker.bell_directory())) < 100
    assert Conf.CLUSTER_NAME
