from rest_framework.test import APIClient


def test_it_issues_a_token_for_good_credentials(alice):
    response = APIClient().post("/api/v1/auth/token", {"username": "alice", "password": "alice-pw"}, format="json")
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40


def test_it_refuses_bad_credentials_with_400(alice):
    response = APIClient().post("/api/v1/auth/token", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_it_asks_for_both_fields(db):
    response = APIClient().post("/api/v1/auth/token", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"username", "password"}


def test_a_bearer_token_authenticates_api_calls(as_alice):
    assert as_alice.get("/api/v1/async-chat/tasks").status_code == 200


def test_it_answers_401_without_credentials(db):
    response = APIClient().get("/api/v1/async-chat/tasks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_answers_401_for_an_invalid_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")
    response = client.get("/api/v1/async-chat/tasks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
