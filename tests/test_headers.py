"""Every page carries a Content-Security-Policy whose nonce its inline scripts and styles bear;
Swagger UI comes from the installed sidecar; a login without `next` lands on the chat page."""

import re

import pytest
from django.test import Client

CSP = "Content-Security-Policy"


def directives(response) -> dict[str, list[str]]:
    policy = response[CSP]
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def nonce_of(response) -> str:
    [nonce] = {v[len("'nonce-") : -1] for v in directives(response)["script-src"] if v.startswith("'nonce-")}
    return nonce


@pytest.fixture
def signed_in(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def test_the_policy_allows_only_our_origin(db):
    policy = directives(Client().get("/accounts/login/"))
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"]  # the pages' own WebSockets, same host
    assert "'unsafe-inline'" not in policy["script-src"]


@pytest.mark.parametrize("path", ["/chat/", "/monitoring/live/", "/admin/operations/", "/accounts/login/"])
def test_each_inline_script_and_style_carries_the_pages_nonce(signed_in, path):
    response = signed_in.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    inline = re.findall(r"<(script|style)(?![^>]*\bsrc=)([^>]*)>", page)
    assert inline, "expected inline scripts or styles on the page"
    nonce = nonce_of(response) if "nonce-" in response[CSP] else None
    for tag, attributes in inline:
        assert f'nonce="{nonce}"' in attributes, f"<{tag}{attributes}> on {path}"


def test_every_page_gets_a_fresh_nonce(signed_in):
    assert nonce_of(signed_in.get("/chat/")) != nonce_of(signed_in.get("/chat/"))


def test_the_api_answers_carry_the_policy_too(as_alice):
    assert CSP in as_alice.get("/api/v1/async-chat/tasks")


def test_the_health_page_alone_may_use_its_inline_style(client, transactional_db):
    response = client.get("/health/ready/", HTTP_ACCEPT="text/html")  # django-health-check's own template
    assert "'unsafe-inline'" in directives(response)["style-src"]
    assert "'unsafe-inline'" not in directives(response)["script-src"]


def test_swagger_ui_comes_from_the_installed_sidecar_without_inline_script(signed_in):
    page = signed_in.get("/api/docs/").content.decode()
    assert "cdn" not in page and "https://" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle" in page
    assert re.search(r'<script src="/api/docs/\?script=', page)  # the start-up script is a file
    script = signed_in.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_whitenoise_serves_the_static_files(db):
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"#header" in b"".join(response.streaming_content)


def test_a_login_without_next_lands_on_the_chat_page(alice):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "alice-pw"})
    assert response.status_code == 302
    assert response["Location"] == "/chat/"
