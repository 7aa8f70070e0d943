"""Submits racing against the admission limits, in a child process on a real database.

Each thread has its own database connection, as each request of a web server has: the test's
own database (SQLite in memory, shared cache, no busy timeout) cannot show that. The child runs
`manage.py shell -c "from tests.support.admission import main; main()"` against the file SQLite
or the PostgreSQL database that DATABASE_URL names, migrates it, runs both races and prints one
line `RESULT={"backlog": [[status, code], ...], "user_cap": [...]}`.
"""

import json
import threading

URL = "/api/v1/async-chat/tasks"
THREADS = 32


def main() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable")
    print("RESULT=" + json.dumps({"backlog": backlog_race(), "user_cap": user_cap_race()}))


def backlog_race() -> list[tuple[int, str | None]]:
    """The backlog is one short of MAX_QUEUED_TASKS; 32 users submit once each."""
    from django.contrib.auth.models import User
    from django.test import override_settings

    with override_settings(MAX_QUEUED_TASKS=10):
        _waiting(User.objects.create_user("filler"), 9)
        return race([User.objects.create_user(f"user-{i}") for i in range(THREADS)])


def user_cap_race() -> list[tuple[int, str | None]]:
    """alice is one short of MAX_ACTIVE_PER_USER (the backlog far from its limit); she submits 32 times at once."""
    from django.contrib.auth.models import User
    from django.test import override_settings

    with override_settings(MAX_ACTIVE_PER_USER=5, MAX_QUEUED_TASKS=500):
        alice = User.objects.create_user("alice")
        _waiting(alice, 4)
        return race([alice] * THREADS)


def _waiting(user, count: int) -> None:
    from chat.submission import Question, submit_question

    for n in range(count):
        submit_question(user, Question(f"Waiting question {n}"))


def race(users: list) -> list[tuple[int, str | None]]:
    """Every user posts one question at the same moment; (status, error code) for each."""
    from django.db import connections
    from django.test import Client

    barrier = threading.Barrier(len(users))
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def one(user) -> None:
        try:
            client = Client()
            client.force_login(user)
            barrier.wait(timeout=60)
            response = client.post(URL, {"question": "Will my new shop do well?"}, content_type="application/json")
            code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
            with lock:
                results.append((response.status_code, code))
        finally:
            connections.close_all()

    workers = [threading.Thread(target=one, args=(user,)) for user in users]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results
