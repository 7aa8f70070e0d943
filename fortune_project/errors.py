"""Every error under /api/ is JSON: {"error": {"code", "message", "details"?}}.

DRF exceptions go through `api_exception_handler`; whatever escapes a view or never reaches
one (unknown URL, oversized body, a crash) is reshaped by `ApiErrorMiddleware`.
"""

import json
import logging

import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)

RETRY_AFTER_503 = "5"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "The service is temporarily unavailable."

    def __init__(self, detail: str | None = None, code: str | None = None, retry_after: int = 5):
        super().__init__(detail, code)
        self.retry_after = retry_after


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the resource's state."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


_RENAMED = {"parse_error": "malformed_json", "invalid": "invalid_input"}


def error_body(code: str, message: str, details: object = None) -> dict:
    body: dict = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def _describe(exc: exceptions.APIException) -> tuple[str, str, object]:
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return "invalid_input", "The request has invalid fields.", detail
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    return _RENAMED.get(code, code), str(exc.detail), None


# SQLite reports a schema problem as an OperationalError, the class it uses for a locked file.
_SCHEMA_PROBLEMS = ("no such table", "no such column", "has no column named", "no such function", "syntax error")


def is_database_outage(exc: BaseException) -> bool:
    """A lost, refused or timed-out database connection or a lock: a 503 worth retrying. Any
    other database error (a missing table or column, a constraint, bad data) is a bug or an
    unfinished migration: a 500 with its cause in the log, not an outage report."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False  # IntegrityError, DataError, ProgrammingError, NotSupportedError, …
    message = str(exc).lower()
    return not any(problem in message for problem in _SCHEMA_PROBLEMS)


def is_cache_outage(exc: BaseException) -> bool:
    """Redis (cache, broker, channel layer) unreachable or timing out: an outage, not a bug."""
    return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)


def outage(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 an outage of the database or of Redis answers with; None for anything else."""
    if is_database_outage(exc):
        log.warning("database unavailable: %s", exc)
        return ServiceUnavailable("The database is unavailable; try again shortly.", "database_unavailable")
    if is_cache_outage(exc):
        log.warning("redis unavailable: %s", exc)
        return ServiceUnavailable("The cache is unavailable; try again shortly.", "cache_unavailable")
    return None


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    # Any other DatabaseError falls through to ApiErrorMiddleware: a logged 500 internal_error.
    exc = outage(exc) or exc
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # ApiErrorMiddleware renders the 500
    assert isinstance(exc, exceptions.APIException)  # DRF's handler answers nothing else (404/403 mapped above)
    code, message, details = _describe(exc)
    response.data = error_body(code, message, details)
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, exceptions.Throttled) and "Retry-After" not in response:
        response["Retry-After"] = "1"  # DRF omits it when the throttle cannot say (contract: always)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _is_api(request) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return self._reshape(response)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        if (unavailable := outage(exc)) is not None:
            response = JsonResponse(error_body(str(unavailable.get_codes()), str(unavailable.detail)), status=503)
            response["Retry-After"] = str(unavailable.retry_after)
            return response
        if isinstance(exc, DatabaseError):
            log.error("database error on %s (not an outage: schema or data)", request.path, exc_info=exc)
        else:
            log.exception("unhandled error on %s", request.path)
        return JsonResponse(error_body("internal_error", "Something went wrong on our side."), status=500)

    @staticmethod
    def _reshape(response: HttpResponse) -> HttpResponse:
        codes = {
            400: ("bad_request", "The request could not be understood."),
            401: ("not_authenticated", "Authentication credentials were not provided."),
            403: ("forbidden", "You may not do that."),
            404: ("not_found", "No such resource."),
            405: ("method_not_allowed", "That method is not allowed here."),
            413: ("payload_too_large", "The request body is too large."),
        }
        code, message = codes.get(response.status_code, ("internal_error", "Something went wrong on our side."))
        reshaped = HttpResponse(
            json.dumps(error_body(code, message)),
            status=response.status_code,
            content_type="application/json",
        )
        for header in ("Retry-After", "Allow", "WWW-Authenticate"):
            if header in response:
                reshaped[header] = response[header]
        return reshaped
