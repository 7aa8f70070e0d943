"""The bench's blocking endpoint (LLM called inside the request) exists only under bench/site/,
for `bench/run`: the product never mounts it, installs its app, or imports the bench."""

import re

import pytest
from django.conf import settings
from django.urls import Resolver404, resolve

from tests.support.processes import ROOT

PRODUCT_PACKAGES = ("fortune_project", "rag", "chat", "monitoring")


@pytest.mark.parametrize("path", ["/bench/blocking", "/bench/trivial"])
def test_the_product_urls_do_not_mount_the_bench_views(path):
    assert settings.ROOT_URLCONF == "fortune_project.urls"
    with pytest.raises(Resolver404):
        resolve(path)


def test_the_product_does_not_install_the_bench_app():
    assert not [app for app in settings.INSTALLED_APPS if app.startswith("bench")]


def test_no_product_module_imports_the_bench():
    importing = re.compile(r"^\s*(from|import)\s+bench\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for package in PRODUCT_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if importing.search(path.read_text())
    ]
    assert offenders == []
