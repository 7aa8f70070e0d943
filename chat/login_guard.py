"""Login throttling for `POST /api/v1/auth/token`, `/accounts/login/` and `/admin/login/`.

Two limits count failed sign-ins over the last LOGIN_FAILURE_WINDOW seconds:

- per username (LOGIN_FAILURES_PER_USERNAME): django-axes. `AxesStandaloneBackend` refuses a
  locked username before any password is checked; axes' database handler records the failures
  (staff see and clear them in the admin, *Axes → Access attempts*).
- per client address (LOGIN_FAILURES_PER_ADDRESS, higher, so one user's typos never lock out
  the people signing in beside them): axes applies one failure limit to all of its lockout
  parameters, so it cannot lock a username at 10 and an address at 50. The address count is
  DRF's `SimpleRateThrottle` (the sliding-window log behind the API's other throttles) fed with
  failures only (like every DRF throttle it reads and writes the cache without a lock, so
  simultaneous failures may be undercounted by a few), and `LoginGuardHandler` plugs it into
  axes' check and failure hooks, so both limits share one backend, one middleware and the
  same answers.

With a limit of N, the N+1st failure within the window is answered 429 and later attempts are
refused unchecked until the window has passed since the last counted failure; refused attempts
are not counted (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False), so a lock always
lifts within one window. A signed-in client keeps its token (chat.auth), so locking a username
never cuts off the clients already holding one.

The API raises `TooManyLoginAttempts` (429 JSON with Retry-After); for the pages AxesMiddleware
calls `lockout_response`, which shows the login form again with the reason.
"""

import logging
from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from fortune_project.errors import error_body

log = logging.getLogger(__name__)

CODE = "too_many_login_attempts"


def retry_after() -> int:
    """Seconds until a lock lifts, at most: every lock lifts one window after its last counted failure."""
    return settings.LOGIN_FAILURE_WINDOW


def lockout_message() -> str:
    return f"Too many failed sign-in attempts. Try again in {retry_after()} seconds."


class TooManyLoginAttempts(Throttled):
    default_code = CODE

    def __init__(self) -> None:
        super().__init__(wait=retry_after(), detail="Too many failed sign-in attempts.", code=CODE)


def username_failure_limit(request: HttpRequest, credentials: dict | None) -> int:
    """AXES_FAILURE_LIMIT: axes locks at the limit-th failure; ours answers that one normally."""
    return settings.LOGIN_FAILURES_PER_USERNAME + 1


def failure_window(request: HttpRequest | None = None) -> timedelta:
    """AXES_COOLOFF_TIME."""
    return timedelta(seconds=settings.LOGIN_FAILURE_WINDOW)


class AddressFailures(SimpleRateThrottle):
    """Failed sign-ins from one client address (as axes resolved it) within the window."""

    scope = "login_failures"

    def __init__(self) -> None:
        # Read at each use, not from DRF's rate table, so the window need not be a whole period.
        self.num_requests = settings.LOGIN_FAILURES_PER_ADDRESS + 1  # as axes counts (above)
        self.duration = settings.LOGIN_FAILURE_WINDOW

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.axes_ip_address}

    def is_full(self, request) -> bool:
        """Whether the address is locked; counts nothing."""
        self.key = self.get_cache_key(request, None)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record(self, request) -> bool:
        """Count one failure; whether the address is now locked."""
        if not self.is_full(request):
            self.throttle_success()  # DRF's: log the time, keep the window's log in the cache
        return len(self.history) >= self.num_requests


class LoginGuardHandler(AxesDatabaseHandler):
    """AXES_HANDLER: axes' database handler (per username) plus the per-address limit."""

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return super().is_locked(request, credentials) or AddressFailures().is_full(request)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        refused = request is not None and request.axes_locked_out  # refused unchecked: counts nothing
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or refused or self.is_whitelisted(request, credentials):
            return
        if AddressFailures().record(request):
            log.warning("sign-in failures from %s are over the address limit", request.axes_ip_address)
            request.axes_locked_out = True
            request.axes_credentials = credentials


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the project's JSON error under /api/, else the login form with the reason."""
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body(CODE, lockout_message()), status=429)
    else:
        response = _form_again(request, original_response) or HttpResponse(
            lockout_message(), status=429, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = str(retry_after())
    return response


def _form_again(request: HttpRequest, original) -> HttpResponse | None:
    """The login page just rendered (ours or the admin's), its error replaced by the lockout."""
    context = getattr(original, "context_data", None) or {}
    form = context.get("form")
    if form is None or not form.is_bound:
        return None
    form.errors.pop(NON_FIELD_ERRORS, None)  # "wrong password" would be untrue for a refused attempt
    form.add_error(None, ValidationError(lockout_message(), code=CODE))
    return TemplateResponse(request, original.template_name, context, status=429).render()
