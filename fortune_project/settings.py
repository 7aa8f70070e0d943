"""Fortune Desk settings: every value comes from the environment (see README, "Settings").

Embedded defaults (no variables set) run the whole system on one machine: SQLite tuned for
concurrent writers, Django-Q2's ORM broker, the database cache and an embedded Chroma store.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

from fortune_project import db_pool
from fortune_project.env import envbool, envchoice, envfloat, envint, envlist, envrate, envstr
from fortune_project.llm_config import breaker_name, fallback_endpoints
from fortune_project.secret_key import secret_key, var_dir

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir()
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file and embedded Chroma store live here

DEBUG = envbool("DEBUG", False)
# SECRET_KEY, else the key `serve` generated in VAR_DIR, else start-up refuses (secret_key.py).
SECRET_KEY = secret_key(DEBUG, VAR_DIR)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# HTTPS, all off by default (bin/up serves plain HTTP on 127.0.0.1); `check --deploy` wants them on.
# Behind a TLS-terminating proxy, SECURE_PROXY_SSL_HEADER names the header and value it sets on
# HTTPS requests ("X-Forwarded-Proto,https"); set it only if the proxy always sets or strips it.
_proxy_header = envlist("SECURE_PROXY_SSL_HEADER", "")
if _proxy_header and len(_proxy_header) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must be a header and its value, e.g. X-Forwarded-Proto,https")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_header[0].upper().replace("-", "_").removeprefix("HTTP_"), _proxy_header[1])
    if _proxy_header
    else None
)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health/"]  # load balancers probe each node over plain HTTP
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens, stored hashed (chat/auth.py)
    "axes",  # login throttling (chat/login_guard.py)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as our own static files
    "csp",
    "django_q",
    "channels",
    "health_check",
    "fortune_project.resilience",
    "chat",
    "rag",
    "monitoring",
]

MIDDLEWARE = [
    # Turns a login lockout into a 429 (chat.login_guard.lockout_response). Above the sync-only
    # ApiErrorMiddleware it runs sync under ASGI too: axes' async path drops the rendered login form.
    "axes.middleware.AxesMiddleware",
    # Outermost but one, so errors raised by the middleware below (a bad Host header) are JSON too.
    "fortune_project.errors.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files in every web process (STATIC_ROOT)
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "fortune_project.urls"
ASGI_APPLICATION = "fortune_project.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'fortune.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Measured (shared/NOTES.md): without these, 3 workers + 3 writers lose results to
    # "database is locked"; with them, 300/300 tasks and no errors.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": envint("SQLITE_BUSY_TIMEOUT", 20, minimum=1),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# Seconds to wait for a PostgreSQL or Redis connection: a host that stops answering must fail
# a request (a JSON 503, a degraded health answer), never hang it for the OS's TCP timeout.
CONNECT_TIMEOUT = envint("CONNECT_TIMEOUT", 5, minimum=1)
# PostgreSQL: under ASGI every request runs in a thread of its own (Django's handler), so without a pool each one
# opened and closed its own connection. Each process keeps a pool (psycopg_pool) of at most
# DB_POOL_MAX_SIZE connections (0: no pool), DB_POOL_MIN_SIZE of them open while idle and the rest
# closed after a minute unused; a request holds one while it runs and waits at most CONNECT_TIMEOUT
# s for one (then 503). Only the web process needs many. Forked workers open their own (db_pool.py).
DB_POOL_MAX_SIZE = envint("DB_POOL_MAX_SIZE", 40, minimum=0)
DB_POOL_MIN_SIZE = envint("DB_POOL_MIN_SIZE", 1, minimum=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = CONNECT_TIMEOUT
    if DB_POOL_MAX_SIZE:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": CONNECT_TIMEOUT,
            "max_idle": 60,
        }
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a pooled connection is checked before use
        db_pool.install()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker, channel layer -----------------------------------------------------------
REDIS_URL = envstr("REDIS_URL")
CACHES: dict[str, dict[str, Any]]
CHANNEL_LAYERS: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": CONNECT_TIMEOUT},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8's default 5 s socket timeout equals channels_redis's blocking receive:
            # an idle consumer then crashes with "Timeout reading"; give the socket more.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 10}]},
        }
    }
else:
    # Shared by every process (web, workers): breaker state and cluster stats live here.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "fortune_cache",
            # The default 300 entries would cull breaker and worker state (lowest keys first).
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# WebSockets one user may hold open at once, counted per web process; one more closes 4429 (0: no cap).
WS_MAX_SOCKETS_PER_USER = envint("WS_MAX_SOCKETS_PER_USER", 20, minimum=0)
# HTTP requests one web process lets into Django at once (fortune_project/admission.py); the
# rest wait on the event loop, without a thread, up to WEB_QUEUE_TIMEOUT seconds, then answer
# 503 overloaded (0: no bound).
WEB_MAX_CONCURRENT_REQUESTS = envint("WEB_MAX_CONCURRENT_REQUESTS", 4, minimum=0)
WEB_QUEUE_TIMEOUT = envfloat("WEB_QUEUE_TIMEOUT", 10, minimum=0.1)
# The web server (fortune_project/webserver.py, uvicorn): the largest WebSocket message a client
# may send (a larger one closes the socket with 1009), the seconds open connections get to finish
# on SIGTERM, and whether it logs every request (off by default, as in gunicorn: its line costs
# the event loop ~25 µs a request, measured; a proxy in front usually keeps that log).
WS_MAX_MESSAGE_BYTES = envint("WS_MAX_MESSAGE_BYTES", 65536, minimum=125)
# The most bytes a request's URL and headers may take together: past it 431
# request_header_too_large, and the connection closes (fortune_project/http_protocol.py).
WEB_MAX_HEADER_BYTES = envint("WEB_MAX_HEADER_BYTES", 65536, minimum=1024)
WEB_SHUTDOWN_TIMEOUT = envint("WEB_SHUTDOWN_TIMEOUT", 5, minimum=1)
WEB_ACCESS_LOG = envbool("WEB_ACCESS_LOG", False)

# --- Fortune tasks and the worker cluster ---------------------------------------------------
FORTUNE_WORKERS = envint("FORTUNE_WORKERS", 3, minimum=1)
TASK_TIMEOUT = envint("TASK_TIMEOUT", 120, minimum=1)
RAG_TIMEOUT = envfloat("RAG_TIMEOUT", 30, minimum=0.1)
LLM_TIMEOUT = envfloat("LLM_TIMEOUT", 60, minimum=0.1)
# How long past its deadline a task may stay non-terminal before the sweeper ends it.
TASK_GRACE = envint("TASK_GRACE", 10, minimum=1)
SWEEP_INTERVAL = envfloat("SWEEP_INTERVAL", 2, minimum=0.1)
# Rescue (chat/rescue.py): a running task whose worker has been missing from every cluster
# heartbeat for ORPHAN_AFTER s (above the ~10 s a restarted cluster's heartbeat can lag, NOTES.md),
# or a task queued ORPHAN_QUEUED_AFTER s while workers idle, is re-queued as its next attempt if
# RESCUE_MIN_SECONDS of its deadline remain and it had fewer than MAX_ATTEMPTS; a running one
# that cannot be re-run ends timed_out (worker_lost) at once.
ORPHAN_AFTER = envfloat("ORPHAN_AFTER", 15, minimum=1)
ORPHAN_QUEUED_AFTER = envfloat("ORPHAN_QUEUED_AFTER", 15, minimum=1)
RESCUE_MIN_SECONDS = envfloat("RESCUE_MIN_SECONDS", 15, minimum=0)
MAX_ATTEMPTS = envint("MAX_ATTEMPTS", 2, minimum=1)
# Backpressure: submit answers 503 overloaded past either limit.
MAX_QUEUED_TASKS = envint("MAX_QUEUED_TASKS", 500, minimum=1)
MAX_QUEUE_AGE = envint("MAX_QUEUE_AGE", 300, minimum=1)
# Fair share: queued + running tasks one user may have; submit answers 429 past it (0: no cap).
MAX_ACTIVE_PER_USER = envint("MAX_ACTIVE_PER_USER", 20, minimum=0)
SUBMIT_RATE = envrate("SUBMIT_RATE", "60/min")
IDEMPOTENCY_WINDOW = envint("IDEMPOTENCY_WINDOW", 24 * 3600, minimum=1)

# Django-Q2 kills a task at `timeout` (+3 s by its guard). Ours end themselves by their
# deadline, so this is only a backstop. `retry` counts from the pusher's claim, including the
# wait in the internal queue (at most one task per worker with queue_limit = workers), so it
# must exceed two timeouts or a slow task is delivered twice (shared/NOTES.md).
Q_TIMEOUT = TASK_TIMEOUT + 5
# Seconds the ORM broker's pusher waits when it finds the queue empty: without the wake-up below
# a new task waits up to this long before a worker sees it, and an idle cluster queries the
# database 1/QUEUE_POLL times a second. The Redis broker blocks on its list and ignores it.
# Measured in docs/benchmarks.md (fail-fast p95 and idle queries/s at several polls).
QUEUE_POLL = envfloat("QUEUE_POLL", 0.2, minimum=0.01)
# ORM broker: a submit also wakes the waiting pusher at once (fortune_project/queue_broker.py),
# so the poll is only the fallback; measured: fail-fast p95 under 100 ms at the same idle load.
QUEUE_WAKEUP = envbool("QUEUE_WAKEUP", True)
Q_CLUSTER: dict[str, Any] = {
    "name": "fortune",
    "workers": FORTUNE_WORKERS,
    "timeout": Q_TIMEOUT,
    "retry": 2 * Q_TIMEOUT + 30,
    "queue_limit": FORTUNE_WORKERS,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 1000,
    "recycle": 500,
    "catch_up": False,
    "guard_cycle": 0.5,
    "poll": QUEUE_POLL,
    "label": "Task cluster",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    if QUEUE_WAKEUP:
        Q_CLUSTER["broker_class"] = "fortune_project.queue_broker.WakeableORM"

# --- Retrieval (ChromaDB + embeddings) ------------------------------------------------------
CHROMA_URL = envstr("CHROMA_URL")
CHROMA_PATH = envstr("CHROMA_PATH", str(VAR_DIR / "chroma"))
CHROMA_COLLECTION_PREFIX = envstr("CHROMA_COLLECTION_PREFIX", "poems")
# "onnx" runs all-MiniLM-L6-v2 from PyPI packages, offline; "openai" uses an
# OpenAI-compatible /v1/embeddings endpoint (EMBEDDINGS_BASE_URL, EMBEDDINGS_MODEL).
EMBEDDINGS = envchoice("EMBEDDINGS", "onnx", ("onnx", "openai"))
EMBEDDINGS_BASE_URL = envstr("EMBEDDINGS_BASE_URL")
EMBEDDINGS_MODEL = envstr("EMBEDDINGS_MODEL", "text-embedding-3-small")
# How much lower than the process's own an embedding's CPU priority runs (Linux niceness,
# added, at most 19), so the web process's event loop still wins the CPU while searches embed.
EMBEDDINGS_NICE = envint("EMBEDDINGS_NICE", 10, minimum=0)
# Whether the web server embeds (searches) in a child process of its own rather than in its
# threads, which took the event loop's GIL for 50-85 ms under a burst (rag/embedding_child.py).
WEB_EMBEDDINGS_PROCESS = envbool("WEB_EMBEDDINGS_PROCESS", True)
RAG_RELATED_K = envint("RAG_RELATED_K", 3, minimum=0)
# Topic routing (rag/router.py): the runner-up topic is routed too when its score (a
# probability) is within ROUTER_MARGIN of the best one's.
ROUTER_MARGIN = envfloat("ROUTER_MARGIN", 0.2, minimum=0)
# Seconds a process reuses a temple's stored topic vectors (related passages, rag/related.py)
# before reading them from Chroma again; an embedded store's write refreshes them at once.
RAG_CACHE_SECONDS = envfloat("RAG_CACHE_SECONDS", 60, minimum=0)
# Seconds an index write (one batch upsert, a delete) may take: rag_reindex and load_poems.
RAG_INDEX_TIMEOUT = envfloat("RAG_INDEX_TIMEOUT", 120, minimum=1)
# load_poems: characters a poem's texts may hold (one poem must not fill every result that
# draws it), and the longest line, CSV record or JSON array item it reads, in bytes; a longer
# one is read through without being kept, so a huge line cannot exhaust memory.
POEM_MAX_VERSE_CHARS = envint("POEM_MAX_VERSE_CHARS", 4000, minimum=1)
POEM_MAX_MEANING_CHARS = envint("POEM_MAX_MEANING_CHARS", 4000, minimum=1)
POEM_MAX_ADVICE_CHARS = envint("POEM_MAX_ADVICE_CHARS", 2000, minimum=1)
POEM_MAX_RECORD_BYTES = envint("POEM_MAX_RECORD_BYTES", 256 * 1024, minimum=4096)
# Seconds GET /poems/search may wait for retrieval before answering 503 rag_unavailable; kept
# short because a web thread waits (tasks use RAG_TIMEOUT).
RAG_SEARCH_TIMEOUT = envfloat("RAG_SEARCH_TIMEOUT", 5, minimum=0.1)
# GET /poems/search: a per-user throttle, and how many searches one web process embeds at once
# (CPU-bound; past it the search answers 503 rag_busy at once rather than queueing).
SEARCH_RATE = envrate("SEARCH_RATE", "30/min")
SEARCH_CONCURRENCY = envint("SEARCH_CONCURRENCY", 2, minimum=1)

# --- LLM ------------------------------------------------------------------------------------
LLM_BASE_URL = envstr("LLM_BASE_URL")
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
LLM_MODEL = envstr("LLM_MODEL", "gpt-4o-mini")
LLM_CHUNK_TIMEOUT = envfloat("LLM_CHUNK_TIMEOUT", 15, minimum=0.1)
LLM_MAX_CHARS = envint("LLM_MAX_CHARS", 4000, minimum=100)
# Failover (chat/llm_endpoints.py): LLM_FALLBACKS names extra endpoints, tried in order after the
# primary, each from LLM_FALLBACK_<NAME>_{BASE_URL,API_KEY,MODEL,TIMEOUT,MIN_TIME}. The next one is
# tried only while its MIN_TIME (default LLM_FAILOVER_MIN_TIME seconds) is left of the task's budget.
LLM_FAILOVER_MIN_TIME = envfloat("LLM_FAILOVER_MIN_TIME", 2, minimum=0.1)
LLM_FALLBACKS = fallback_endpoints(LLM_MODEL, LLM_TIMEOUT, LLM_FAILOVER_MIN_TIME)

# --- Circuit breakers (monitoring/breakers.py) -----------------------------------------------
# name -> rules, each from BREAKER_<NAME>_<RULE>. THRESHOLD consecutive failures open it; after
# RECOVERY seconds one probe (HALF_OPEN_CALLS trials) decides within PROBE_TIMEOUT seconds (default:
# the stage's timeout + 5, so a slow but healthy probe still counts). Optional, 0 = off: SLOW_CALL
# (seconds; a slower call counts as a failure) and FAILURE_RATE (percent of calls failing over
# RATE_WINDOW seconds, judged once RATE_MIN_CALLS calls were seen).


def _breaker(name: str, threshold: int, recovery: float, stage_timeout: float) -> dict:
    env = f"BREAKER_{name.upper().replace('-', '_')}_"  # llm-backup: BREAKER_LLM_BACKUP_*
    return {
        "failure_threshold": envint(env + "THRESHOLD", threshold, minimum=1),
        "recovery_timeout": envfloat(env + "RECOVERY", recovery, minimum=0.1),
        "slow_call_seconds": envfloat(env + "SLOW_CALL", 0),
        "failure_rate": envfloat(env + "FAILURE_RATE", 0),
        "rate_window": envfloat(env + "RATE_WINDOW", 60, minimum=1),
        "rate_min_calls": envint(env + "RATE_MIN_CALLS", 10, minimum=1),
        "half_open_calls": envint(env + "HALF_OPEN_CALLS", 1, minimum=1),
        "probe_timeout": envfloat(env + "PROBE_TIMEOUT", stage_timeout + 5),
    }


BREAKERS = {
    "rag": _breaker("rag", 3, 30, RAG_TIMEOUT),
    "llm": _breaker("llm", 5, 60, LLM_TIMEOUT),
    "chromadb": _breaker("chromadb", 3, 45, RAG_TIMEOUT),
}
for _fallback in LLM_FALLBACKS:  # llm-<name>: the llm breaker's rules unless BREAKER_LLM_<NAME>_* says otherwise
    _llm = BREAKERS["llm"]
    BREAKERS[breaker_name(_fallback["name"])] = _breaker(
        breaker_name(_fallback["name"]), _llm["failure_threshold"], _llm["recovery_timeout"], _fallback["timeout"]
    )
# Exceptions that say nothing about the dependency's health (dotted paths); subclasses of
# fortune_project.resilience.breakers.Ignored never count either. A per-breaker "ignore_exceptions" list replaces it.
BREAKER_IGNORED_EXCEPTIONS = envlist(
    "BREAKER_IGNORED_EXCEPTIONS", "fortune_project.resilience.deadlines.DeadlineExceeded"
)
# The cache alias holding breaker state (must be shared by all processes) and its key prefix.
BREAKER_CACHE = envstr("BREAKER_CACHE", "default")
BREAKER_KEY_PREFIX = envstr("BREAKER_KEY_PREFIX", "breaker")

# --- API ------------------------------------------------------------------------------------
# Request bodies nested deeper than this are refused (400 malformed_json) before they are parsed.
API_MAX_JSON_DEPTH = envint("API_MAX_JSON_DEPTH", 32, minimum=2)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "chat.auth.BearerTokenAuthentication",  # knox's `Bearer <token>` (REST_KNOX below)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["fortune_project.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "fortune_project.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"submit": SUBMIT_RATE, "search": SEARCH_RATE},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fortune Desk API",
    "VERSION": "1.0.0",
    # Not a public endpoint (contract): a token or a logged-in session, as for the API itself.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from the installed drf-spectacular-sidecar, never a CDN (and no inline script: CSP).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},  # no call to validator.swagger.io
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "fortune_project.openapi.add_error_responses",
    ],
}

# --- Sign-in: API tokens and login throttling (chat/auth.py, chat/login_guard.py) ------------
# Tokens are django-rest-knox's: stored as SHA-512 digests; each use (at most one write a
# minute) moves the expiry TOKEN_TTL_HOURS ahead, so a token in use never lapses.
TOKEN_TTL_HOURS = envint("TOKEN_TTL_HOURS", 7 * 24, minimum=1)
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": timedelta(hours=TOKEN_TTL_HOURS),
    "AUTO_REFRESH": True,
    "MIN_REFRESH_INTERVAL": 60,
}
# Failed sign-ins counted per username and, at a higher limit, per client address over the
# window; the next failure past a limit answers 429 until the window has passed.
LOGIN_FAILURE_WINDOW = envint("LOGIN_FAILURE_WINDOW", 60, minimum=1)
LOGIN_FAILURES_PER_USERNAME = envint("LOGIN_FAILURES_PER_USERNAME", 10, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = envint("LOGIN_FAILURES_PER_ADDRESS", 50, minimum=LOGIN_FAILURES_PER_USERNAME + 1)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked username before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "chat.login_guard.LoginGuardHandler"
AXES_LOCKOUT_PARAMETERS = ["username"]  # the address limit is the handler's (it differs)
SILENCED_SYSTEM_CHECKS = ["axes.W006"]  # "no ip_address lockout": LoginGuardHandler has it
AXES_FAILURE_LIMIT = "chat.login_guard.username_failure_limit"
AXES_COOLOFF_TIME = "chat.login_guard.failure_window"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # so every lock lifts within one window
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "chat.login_guard.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in

# --- The rest -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# `collectstatic` (run by serve) fills STATIC_ROOT with hashed, compressed copies; WhiteNoise's
# middleware serves them from every web process (serve, Daphne on its own), cached for a year.
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Source maps (6 MB of Swagger UI's) are only read by developer tools: compressing them doubled
# the time `collectstatic` adds to every start of `serve`.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/chat/"
LOG_LEVEL = envchoice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"chromadb": {"level": "WARNING"}, "httpx": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Content-Security-Policy (django-csp) -----------------------------------------------------
# Every page: scripts and styles only from our origin or carrying the request's nonce
# (`nonce="{{ request.csp_nonce }}"`); no inline event handlers, no other origin. `'self'` in
# connect-src covers the pages' own WebSockets (ws: on http, wss: on https, same host).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Operations (monitoring/alerts.py, workers.py, live.py, prometheus.py, health_checks.py) ---
# Alert thresholds. Queue: a warning past these, critical where submit starts refusing
# (MAX_QUEUED_TASKS, MAX_QUEUE_AGE). Rates are percents of the tasks that ended (succeeded,
# failed or timed out) in the last ALERT_WINDOW seconds, judged once ALERT_MIN_TASKS ended.
ALERT_QUEUE_BACKLOG = envint("ALERT_QUEUE_BACKLOG", 50, minimum=1)
ALERT_QUEUE_AGE = envint("ALERT_QUEUE_AGE", 60, minimum=1)
ALERT_WINDOW = envint("ALERT_WINDOW", 15 * 60, minimum=60)
ALERT_FAILURE_RATE = envfloat("ALERT_FAILURE_RATE", 20, minimum=0.1)
ALERT_TIMEOUT_RATE = envfloat("ALERT_TIMEOUT_RATE", 10, minimum=0.1)
ALERT_MIN_TASKS = envint("ALERT_MIN_TASKS", 5, minimum=1)
# A sweeper heartbeat older than this raises `sweeper_stale` (no heartbeat at all: no alert).
ALERT_SWEEPER_STALE = envint("ALERT_SWEEPER_STALE", 120, minimum=1)
# Rescued or worker_lost tasks in the last ALERT_WINDOW seconds that raise `rescue_spike`
# (critical at twice): workers or clusters keep dying.
ALERT_RESCUES = envint("ALERT_RESCUES", 5, minimum=1)
# With LLM_FALLBACKS: seconds fallbacks may answer in place of the primary before `llm_primary_bypassed`.
ALERT_LLM_BYPASSED = envint("ALERT_LLM_BYPASSED", 300, minimum=1)
# Seconds a worker's busy/idle record outlives its last change. A busy record must outlive the
# longest task (Django-Q2 kills a worker at Q_TIMEOUT + 3 s), so it never vanishes mid-task.
OPS_WORKER_TTL = envint("OPS_WORKER_TTL", Q_TIMEOUT + 60, minimum=Q_TIMEOUT + 5)
# The live page's socket: seconds between polls of the shared state, and how long the slower
# task figures (1 h / 24 h, the 15-minute chart) are reused between polls.
OPS_LIVE_POLL = envfloat("OPS_LIVE_POLL", 0.5, minimum=0.1)
OPS_FIGURES_TTL = envfloat("OPS_FIGURES_TTL", 5, minimum=0)
# Seconds between a web process's refreshes of the public health snapshot it serves from memory
# (monitoring/public_health.py); 0 probes on every request instead.
HEALTH_SNAPSHOT_INTERVAL = envfloat("HEALTH_SNAPSHOT_INTERVAL", 1, minimum=0)
# Seconds the /health/ ChromaDB check waits for a heartbeat.
HEALTH_CHROMA_TIMEOUT = envfloat("HEALTH_CHROMA_TIMEOUT", 3, minimum=0.1)
# The bearer token Prometheus sends to GET /metrics; without it only staff sessions may read it.
METRICS_TOKEN = envstr("METRICS_TOKEN")
