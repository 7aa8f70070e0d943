import threading
import time

import pytest

from fortune_project.resilience.bulkhead import Bulkhead, BulkheadFull


def test_it_refuses_past_its_limit_at_once():
    bulkhead = Bulkhead("search", lambda: 2)
    bulkhead.acquire(), bulkhead.acquire()
    started = time.monotonic()
    with pytest.raises(BulkheadFull, match="search: all 2 slots are busy"):
        bulkhead.acquire()
    assert time.monotonic() - started < 0.1


def test_a_released_slot_can_be_taken_again_and_releasing_twice_frees_one_place():
    bulkhead = Bulkhead("search", lambda: 1)
    slot = bulkhead.acquire()
    slot.release()
    slot.release()
    assert bulkhead.active == 0
    with bulkhead.acquire():
        assert bulkhead.active == 1
    assert bulkhead.active == 0


def test_it_reads_its_limit_on_every_acquire():
    limit = [1]
    bulkhead = Bulkhead("search", lambda: limit[0])
    bulkhead.acquire()
    limit[0] = 2
    bulkhead.acquire()
    assert bulkhead.active == 2


def test_of_40_threads_racing_for_3_slots_3_get_one_and_37_are_refused():
    bulkhead = Bulkhead("search", lambda: 3)
    barrier, all_tried = threading.Barrier(40), threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def tried(outcome: str) -> None:
        with lock:
            outcomes.append(outcome)
            if len(outcomes) == 40:
                all_tried.set()

    def work() -> None:
        barrier.wait()
        try:
            with bulkhead.acquire():
                tried("held")
                all_tried.wait(10)  # every holder keeps its slot until everyone has tried
        except BulkheadFull:
            tried("refused")

    threads = [threading.Thread(target=work) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (outcomes.count("held"), outcomes.count("refused")) == (3, 37)
    assert bulkhead.active == 0
