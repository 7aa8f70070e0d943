"""At most WEB_MAX_CONCURRENT_REQUESTS requests in Django at once; the rest wait on the loop, then 503."""

import asyncio
import json

from django.test import override_settings

from fortune_project import admission


class Django:
    """Stands in for Django's ASGI app: answers 200 after `seconds`, counting requests inside."""

    def __init__(self, seconds: float = 0.05):
        self.seconds = seconds
        self.inside = 0
        self.most_inside = 0
        self.served = 0

    async def __call__(self, scope: dict, receive, send) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await asyncio.sleep(self.seconds)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"[]"})
            self.served += 1
        finally:
            self.inside -= 1


def request(app, path: str = "/api/v1/async-chat/poems/search", kind: str = "http", method: str = "GET"):
    """One request through `app`: (status, headers, body)."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def go() -> tuple[int, dict, bytes]:
        await app({"type": kind, "path": path, "method": method, "headers": []}, None, send)
        if not sent:
            return 0, {}, b""
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    return go()


def burst(app, count: int, **kwargs) -> list[tuple[int, dict, bytes]]:
    async def go():
        return await asyncio.gather(*(request(app, **kwargs) for _ in range(count)))

    return asyncio.run(go())


@override_settings(WEB_MAX_CONCURRENT_REQUESTS=4, WEB_QUEUE_TIMEOUT=10)
def test_mallorys_burst_of_80_reaches_django_4_at_a_time_and_every_one_is_served():
    django = Django()
    answers = burst(admission.bounded(django), 80)
    assert [status for status, _, _ in answers] == [200] * 80
    assert django.most_inside == 4
    assert django.served == 80


@override_settings(WEB_MAX_CONCURRENT_REQUESTS=1, WEB_QUEUE_TIMEOUT=0.1)
def test_a_request_that_waits_past_the_queue_timeout_answers_503_overloaded_with_retry_after():
    django = Django(seconds=0.5)
    answers = burst(admission.bounded(django), 3)
    assert sorted(status for status, _, _ in answers) == [200, 503, 503]
    _, headers, body = next(a for a in answers if a[0] == 503)
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"retry-after"]) > 0
    assert json.loads(body)["error"]["code"] == "overloaded"
    assert django.served == 1


@override_settings(WEB_MAX_CONCURRENT_REQUESTS=1, WEB_QUEUE_TIMEOUT=0.1)
def test_a_page_past_the_queue_timeout_gets_plain_text_and_a_head_no_body():
    django = Django(seconds=0.5)
    pages = burst(admission.bounded(django), 2, path="/accounts/login/")
    status, headers, body = next(a for a in pages if a[0] == 503)
    assert headers[b"content-type"].startswith(b"text/plain") and b"busy" in body
    heads = burst(admission.bounded(Django(seconds=0.5)), 2, method="HEAD")
    assert next(a for a in heads if a[0] == 503)[2] == b""


@override_settings(WEB_MAX_CONCURRENT_REQUESTS=1, WEB_QUEUE_TIMEOUT=0.1)
def test_a_request_that_fails_in_django_gives_its_place_back():
    django = Django(seconds=0)

    async def fails_twice(scope, receive, send):
        if django.served + failures.count(True) < 2:
            failures.append(True)
            raise RuntimeError("boom")
        await django(scope, receive, send)

    failures: list[bool] = []
    app = admission.bounded(fails_twice)

    async def go() -> int:
        for _ in range(2):
            try:
                await request(app)
            except RuntimeError:
                pass
        return (await request(app))[0]

    assert asyncio.run(go()) == 200  # not 503: the failed requests' places are free again


@override_settings(WEB_MAX_CONCURRENT_REQUESTS=1, WEB_QUEUE_TIMEOUT=0.1)
def test_websockets_are_not_counted():
    django = Django(seconds=0.3)
    app = admission.bounded(django)
    burst(app, 5, kind="websocket")
    assert django.most_inside == 5


@override_settings(WEB_MAX_CONCURRENT_REQUESTS=0)
def test_bob_the_operator_can_turn_the_bound_off():
    django = Django()
    assert admission.bounded(django) is django
