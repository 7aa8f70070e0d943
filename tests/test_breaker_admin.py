"""The admin: a read-only transition log and a page of live breakers with action buttons."""

from uuid import uuid4

import pytest
from django.test import Client

from fortune_project.resilience.breakers import get_breaker
from fortune_project.resilience.models import BreakerEvent

PAGE = "/admin/monitoring/circuitbreaker/"


@pytest.fixture(autouse=True)
def fresh_breakers(settings, db):
    settings.BREAKER_KEY_PREFIX = f"test-{uuid4().hex[:8]}"


@pytest.fixture
def bob_in_admin(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def test_the_breakers_page_lists_every_breaker_with_its_state(bob_in_admin):
    get_breaker("llm").force_open(who="test")

    response = bob_in_admin.get(PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    assert all(name in page for name in ("rag", "llm", "chromadb"))
    assert "forced_open" in page and "Force open" in page


def test_a_button_resets_the_breaker_and_records_bob(bob_in_admin, bob):
    get_breaker("llm").force_open(who="test")

    response = bob_in_admin.post(PAGE, {"name": "llm", "action": "reset"}, follow=True)

    assert response.status_code == 200
    assert "Breaker llm is now closed." in response.content.decode()
    event = BreakerEvent.objects.filter(name="llm").latest("id")
    assert (event.to_state, event.who, event.actor) == ("closed", "bob (admin)", bob)


@pytest.mark.parametrize(("action", "state"), [("force_open", "forced_open"), ("disable", "disabled")])
def test_buttons_force_open_and_disable(bob_in_admin, action, state):
    bob_in_admin.post(PAGE, {"name": "rag", "action": action})

    assert get_breaker("rag").state() == state


def test_an_unknown_breaker_or_action_changes_nothing(bob_in_admin):
    first = bob_in_admin.post(PAGE, {"name": "nope", "action": "reset"}, follow=True)
    second = bob_in_admin.post(PAGE, {"name": "llm", "action": "explode"}, follow=True)

    assert "unknown circuit breaker &#x27;nope&#x27;" in first.content.decode().lower()
    assert "unknown action" in second.content.decode().lower()
    assert not BreakerEvent.objects.exists()


def test_the_event_log_is_read_only(bob_in_admin):
    get_breaker("rag").force_open(who="test")
    event = BreakerEvent.objects.get()

    assert bob_in_admin.get("/admin/monitoring/breakerevent/?name=rag").status_code == 200
    assert bob_in_admin.get("/admin/monitoring/breakerevent/add/").status_code == 403
    assert bob_in_admin.post(f"/admin/monitoring/breakerevent/{event.pk}/delete/").status_code == 403


def test_a_seeker_cannot_reach_the_admin_pages(alice):
    client = Client()
    client.force_login(alice)

    assert client.get(PAGE).status_code == 302  # to the admin login
    assert client.post(PAGE, {"name": "llm", "action": "reset"}).status_code == 302
    assert not BreakerEvent.objects.exists()
