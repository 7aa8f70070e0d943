"""Under `manage.py serve` (what bin/up runs), in headless Chromium: the admin pages get their
stylesheets from WhiteNoise, and Swagger UI comes from drf-spectacular-sidecar with no request
leaving the machine. Every page passes the Content-Security-Policy."""

from urllib.parse import urlsplit

import pytest

from tests.support.browser import admin_login, chromium_page, needs_browser, screenshot, watch_csp
from tests.support.processes import base_env, free_port, manage, port_open, run_manage, wait_until

pytestmark = [pytest.mark.slow, needs_browser]

ADMIN = "from django.contrib.auth.models import User; User.objects.create_superuser('bob', password='bob-pw')"
# Both come only from the admin's base.css: without it #header is a plain block with no variable.
HEADER_STYLE = (
    "() => [getComputedStyle(document.querySelector('#header')).display,"
    " getComputedStyle(document.documentElement).getPropertyValue('--header-bg').trim() !== '']"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("static-site")
    env = base_env(tmp_path)
    port = free_port()
    server = manage(["serve", "--port", str(port), "--no-sample-poems"], env, tmp_path / "serve.log")
    try:
        wait_until(lambda: port_open(port), 120, what=f"the web server\n{server.log_path}")
        assert run_manage(["shell", "-c", ADMIN], env).returncode == 0
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_the_admin_index_and_the_operations_page_are_styled(site):
    with chromium_page() as page:
        refused = watch_csp(page)
        admin_login(page, site, "bob", "bob-pw", "/admin/")
        assert page.evaluate(HEADER_STYLE) == ["flex", True]
        screenshot(page, "static-admin-index")
        page.goto(f"{site}/admin/operations/")
        assert page.evaluate(HEADER_STYLE) == ["flex", True]
        # The page's own rules arrive too, in a <style> carrying the CSP nonce.
        assert page.evaluate("() => getComputedStyle(document.querySelector('.ops-grid')).display") == "grid"
        screenshot(page, "static-admin-operations")
        assert refused == []


def test_swagger_ui_renders_with_no_network_access(site):
    host = urlsplit(site).netloc
    elsewhere: list[str] = []

    def only_this_server(route):
        if urlsplit(route.request.url).netloc == host:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with chromium_page() as page:
        page.route("**/*", only_this_server)
        refused = watch_csp(page)
        admin_login(page, site, "bob", "bob-pw", "/admin/")
        page.goto(f"{site}/api/docs/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "Fortune Desk API" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(".opblock-tag", timeout=10_000)  # the schema loaded: endpoints listed
        screenshot(page, "static-api-docs")
        assert elsewhere == []
        assert refused == []


ADMIN_PAGES = [
    "/admin/auth/user/",  # changelist: actions, filters, search
    "/admin/auth/user/1/change/",  # a form with date and time widgets (calendar, clock)
    "/admin/monitoring/circuitbreaker/",  # our breaker controls, styled through a nonce
    "/admin/chat/fortunetask/",
]


def test_admin_pages_and_their_widgets_run_under_the_policy(site):
    with chromium_page() as page:
        refused = watch_csp(page)
        admin_login(page, site, "bob", "bob-pw", "/admin/")
        for path in ADMIN_PAGES:
            response = page.goto(f"{site}{path}")
            assert response is not None and response.status == 200, path
            assert page.evaluate(HEADER_STYLE) == ["flex", True], path
        page.goto(f"{site}/admin/auth/user/1/change/")
        link = page.locator(".field-date_joined a[id^=calendarlink]")
        box = "#calendarbox" + (link.get_attribute("id") or "").removeprefix("calendarlink")
        link.click()  # the date widget's JavaScript opens its calendar
        page.wait_for_selector(box, state="visible", timeout=5_000)
        page.goto(f"{site}/admin/monitoring/circuitbreaker/")
        form_display = "() => getComputedStyle(document.querySelector('form.breaker-action')).display"
        assert page.evaluate(form_display) == "inline"
        assert refused == []
