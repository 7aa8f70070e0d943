"""/api/schema/ and /api/docs/: for signed-in callers only, like the API they describe."""

import yaml
from django.test import Client
from rest_framework.test import APIClient


def test_the_schema_describes_the_contracts_endpoints(as_alice):
    response = as_alice.get("/api/schema/")
    assert response.status_code == 200
    paths = yaml.safe_load(response.content)["paths"]
    assert {"/api/v1/async-chat/tasks", "/api/v1/async-chat/tasks/{task_id}/cancel"} <= set(paths)


def test_the_schema_is_refused_without_credentials_in_json(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_docs_page_opens_for_a_signed_in_session(alice):
    browser = Client()
    browser.force_login(alice)
    response = browser.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_the_docs_page_is_refused_without_a_session(db):
    assert Client().get("/api/docs/").status_code == 401
