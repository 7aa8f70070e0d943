"""The product's settings plus the bench-only app and URL conf (bench/site/urls.py)."""

from fortune_project.settings import *  # noqa: F403
from fortune_project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.site.apps.BenchSiteConfig"]
ROOT_URLCONF = "bench.site.urls"

# Bench users sign in once each and no benchmark measures password hashing: hashing the bench's
# throwaway users with a fast hasher keeps a run's set-up short on a busy machine.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
