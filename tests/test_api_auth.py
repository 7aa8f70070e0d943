"""Signing in: `POST /api/v1/auth/token`, the tokens it hands out, and revoking them."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.conftest import token_for
from tests.test_settings import start

TOKEN_URL = "/api/v1/auth/token"


def sign_in(username: str, password: str, client: APIClient | None = None):
    return (client or APIClient()).post(TOKEN_URL, {"username": username, "password": password}, format="json")


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_it_issues_a_token_and_its_expiry_for_good_credentials(alice):
    response = sign_in("alice", "alice-pw")
    assert response.status_code == 200
    body = response.json()
    assert len(body["token"]) == 64
    assert body["expiry"].endswith("Z")
    assert bearer(body["token"]).get("/api/v1/async-chat/tasks").status_code == 200


def test_the_expiry_is_token_ttl_hours_ahead(alice, settings):
    expiry = sign_in("alice", "alice-pw").json()["expiry"]
    ahead = datetime.fromisoformat(expiry.replace("Z", "+00:00")) - timezone.now()
    assert timedelta(hours=settings.TOKEN_TTL_HOURS) - ahead < timedelta(minutes=1)


def test_it_refuses_bad_credentials_with_400(alice):
    response = sign_in("alice", "nope")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_it_asks_for_both_fields(db):
    response = APIClient().post(TOKEN_URL, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"username", "password"}


def test_signing_in_ignores_a_stale_token_sent_along(alice):
    response = sign_in("alice", "alice-pw", client=bearer("expired-or-revoked"))
    assert response.status_code == 200


def test_a_bearer_token_authenticates_api_calls(as_alice):
    assert as_alice.get("/api/v1/async-chat/tasks").status_code == 200


def test_it_answers_401_without_credentials(db):
    response = APIClient().get("/api/v1/async-chat/tasks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_answers_401_for_an_invalid_token(db):
    response = bearer("not-a-real-token").get("/api/v1/async-chat/tasks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


# --- storage, expiry, revocation ---------------------------------------------------------------


def test_the_token_is_stored_hashed(alice):
    token = sign_in("alice", "alice-pw").json()["token"]
    row = AuthToken.objects.get(user=alice)
    stored = " ".join(str(value) for value in AuthToken.objects.filter(pk=row.pk).values().get().values())
    assert token not in stored
    assert row.digest != token and len(row.digest) == 128


def test_an_expired_token_is_refused_with_401(alice):
    token = token_for(alice)
    AuthToken.objects.filter(user=alice).update(expiry=timezone.now() - timedelta(seconds=1))
    assert bearer(token).get("/api/v1/async-chat/tasks").status_code == 401


def test_using_a_token_moves_its_expiry_ahead(alice, settings):
    token = token_for(alice)
    AuthToken.objects.filter(user=alice).update(expiry=timezone.now() + timedelta(hours=1))
    assert bearer(token).get("/api/v1/async-chat/tasks").status_code == 200
    left = AuthToken.objects.get(user=alice).expiry - timezone.now()
    assert left > timedelta(hours=settings.TOKEN_TTL_HOURS) - timedelta(minutes=1)


def test_the_owner_revokes_the_token_in_use(alice):
    token, other = token_for(alice), token_for(alice)
    assert bearer(token).delete(TOKEN_URL).status_code == 204
    assert bearer(token).get("/api/v1/async-chat/tasks").status_code == 401
    assert bearer(other).get("/api/v1/async-chat/tasks").status_code == 200


def test_revoking_needs_a_token(db):
    assert APIClient().delete(TOKEN_URL).status_code == 401


def test_the_owner_revokes_all_of_their_tokens_and_no_one_elses(alice, mallory):
    token, other, mallorys = token_for(alice), token_for(alice), token_for(mallory)
    response = bearer(token).post(f"{TOKEN_URL}/revoke-all")
    assert response.status_code == 200 and response.json() == {"revoked": 2}
    assert bearer(other).get("/api/v1/async-chat/tasks").status_code == 401
    assert bearer(mallorys).get("/api/v1/async-chat/tasks").status_code == 200


def test_staff_revoke_a_token_in_the_admin(alice, bob):
    bob.is_superuser = True  # the admin's delete permission
    bob.save(update_fields=["is_superuser"])
    token = token_for(alice)
    staff = Client()
    staff.force_login(bob)
    row = AuthToken.objects.get(user=alice)
    response = staff.post(f"/admin/knox/authtoken/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert bearer(token).get("/api/v1/async-chat/tasks").status_code == 401


def test_the_admin_never_lists_raw_tokens(alice, bob):
    bob.is_superuser = True
    bob.save(update_fields=["is_superuser"])
    token = token_for(alice)
    staff = Client()
    staff.force_login(bob)
    page = staff.get("/admin/knox/authtoken/").content.decode()
    assert "alice" in page
    assert token not in page and token[:15] not in page


# --- login throttling --------------------------------------------------------------------------

PAGES = ["/accounts/login/", "/admin/login/"]


def fail_api(times: int, username: str = "alice", address: str = "127.0.0.1"):
    client = APIClient(REMOTE_ADDR=address)
    return [sign_in(username, "wrong", client).status_code for _ in range(times)]


def test_the_11th_wrong_password_within_a_minute_is_answered_429(alice):
    assert fail_api(10) == [400] * 10
    response = sign_in("alice", "wrong")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_login_attempts"
    assert int(response["Retry-After"]) == 60


def test_a_locked_username_is_refused_even_with_its_password(alice):
    fail_api(11)
    response = sign_in("alice", "alice-pw")
    assert response.status_code == 429 and "token" not in response.json()


def test_other_users_at_the_same_address_still_sign_in(alice, bob):
    fail_api(11)
    assert sign_in("bob", "bob-pw").status_code == 200


def test_the_address_limit_is_higher_and_catches_spraying(alice, bob, mallory, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 12
    assert fail_api(10, "alice") == [400] * 10
    assert fail_api(2, "mallory") == [400, 400]
    assert fail_api(1, "mallory") == [429]  # the address's 13th failure
    assert sign_in("bob", "bob-pw").status_code == 429
    assert sign_in("bob", "bob-pw", APIClient(REMOTE_ADDR="10.9.9.9")).status_code == 200


def test_a_lock_lifts_after_the_window(alice, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    fail_api(11)
    time_machine.shift(61)
    assert sign_in("alice", "alice-pw").status_code == 200


def test_a_good_sign_in_clears_the_count(alice):
    fail_api(10)
    assert sign_in("alice", "alice-pw").status_code == 200
    assert fail_api(10) == [400] * 10


@pytest.mark.parametrize("page", PAGES)
def test_the_login_pages_show_a_form_error_on_the_11th_wrong_password(alice, bob, page):
    browser = Client()
    for _ in range(10):
        response = browser.post(page, {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    response = browser.post(page, {"username": "alice", "password": "wrong"})
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    html = response.content.decode()
    assert "Too many failed sign-in attempts" in html
    assert "<form" in html and 'name="password"' in html
    assert "correct username and password" not in html
    assert Client().post(page, {"username": "bob", "password": "bob-pw"}).status_code == 302


def test_failures_on_the_pages_and_the_api_add_up(alice):
    browser = Client()
    for _ in range(6):
        browser.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert fail_api(5) == [400] * 4 + [429]


def test_an_address_limit_not_above_the_username_limit_stops_start_up():
    done = start(LOGIN_FAILURES_PER_USERNAME="10", LOGIN_FAILURES_PER_ADDRESS="10")
    assert done.returncode != 0 and "LOGIN_FAILURES_PER_ADDRESS" in done.stderr
