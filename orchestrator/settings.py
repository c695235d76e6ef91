"""Settings for the orchestrator, read from the environment (see README, "Configuration").

Defaults run on the embedded stack: SQLite and a filesystem broker under ORCHESTRATOR_HOME.
DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis/RabbitMQ.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    orchestrator_home,
    proxy_ssl_header,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
ORCHESTRATOR_HOME = orchestrator_home()

SECRET_KEY = secret_key(ORCHESTRATOR_HOME)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS in production (README, "Configuration"; `manage.py check --deploy` is clean with
# them set). Off by default: `make up` serves plain HTTP on localhost.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# Behind a proxy that terminates TLS: the header it sets and its value, e.g.
# SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto:https (trust it only if the proxy always sets it).
SECURE_PROXY_SSL_HEADER = proxy_ssl_header("SECURE_PROXY_SSL_HEADER")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served by us, not a CDN
    "accounts",
    "automations",
    "django_crontab",
    "orchestrator",
    "runs",
    "workpools",
    "deployments",
    "blocks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orchestrator.metrics.ApiMetricsMiddleware",
    "orchestrator.middleware.BodySizeLimitMiddleware",
    "orchestrator.middleware.NulInUrlMiddleware",
    "orchestrator.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.audit.AuditActorMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orchestrator.middleware.HtmxLoginRedirectMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"

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
                "accounts.roles.role_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
SQLITE_PATH = ORCHESTRATOR_HOME / "orchestrator.sqlite3"
# A remote worker and its flow runs reach the orchestrator over its API (runworker --api-url):
# with ORCHESTRATOR_API_URL set and no DATABASE_URL, the process has no database at all.
ORCHESTRATOR_API_URL = env_str("ORCHESTRATOR_API_URL", "")
DATABASE_URL = env_str("DATABASE_URL", "") or ("" if ORCHESTRATOR_API_URL else f"sqlite:///{SQLITE_PATH}")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
else:
    DATABASES = {"default": {"ENGINE": "orchestrator.nodb"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Several processes (web, scheduler, workers, flow runs) share one file: WAL lets
        # readers go on while one writes, and IMMEDIATE takes the write lock at BEGIN so two
        # claimers queue up instead of failing with "database is locked" on lock upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the subprocesses a test starts can reach the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(ORCHESTRATOR_HOME / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("application_name", env_str("DB_APPLICATION_NAME", "orchestrator"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time into its own folder (STATIC_ROOT=/app/staticfiles).
STATIC_ROOT = Path(env_str("STATIC_ROOT", "") or ORCHESTRATOR_HOME / "static")
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The dashboard's own sign-in page (the admin's still works for the admin).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Celery -------------------------------------------------------------------------------------
BROKER_DIR = ORCHESTRATOR_HOME / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One folder for in and out: producers and consumers meet there.
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # Broadcasts (worker remote control) too; kombu's default is ./control in the cwd.
        "control_folder": str(BROKER_DIR / "control"),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(ORCHESTRATOR_HOME / "celerybeat-schedule")

# Periodic services (Celery beat), each a thin task over a service. The scheduler's full pass
# can be slow-paced: a new or changed deployment is scheduled at once by its own task.
SCHEDULER_INTERVAL_SECONDS = env_float("SCHEDULER_INTERVAL_SECONDS", 60.0, minimum=0.5)
LATE_RUNS_INTERVAL_SECONDS = env_float("LATE_RUNS_INTERVAL_SECONDS", 5.0, minimum=0.5)
REAPER_INTERVAL_SECONDS = env_float("REAPER_INTERVAL_SECONDS", 10.0, minimum=0.5)
RETENTION_INTERVAL_SECONDS = env_float("RETENTION_INTERVAL_SECONDS", 3600.0, minimum=1)


def _every(seconds: float, task: str) -> dict:
    # A tick that waited longer than its interval (worker down) is dropped, not piled up.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


CELERY_BEAT_SCHEDULE = {
    "schedule-deployments": _every(SCHEDULER_INTERVAL_SECONDS, "deployments.tasks.schedule_deployments"),
    "mark-late-runs": _every(LATE_RUNS_INTERVAL_SECONDS, "runs.tasks.mark_late_runs"),
    "fail-expired-pauses": _every(LATE_RUNS_INTERVAL_SECONDS, "runs.tasks.fail_expired_pauses"),
    "reap-crashed-runs-and-offline-workers": _every(REAPER_INTERVAL_SECONDS, "workpools.tasks.recover_lost_runs"),
    "delete-old-runs": _every(RETENTION_INTERVAL_SECONDS, "runs.tasks.delete_old_runs"),
}

# The same services from host cron, for hosts without a broker: `manage.py crontab add`.
CRONJOBS = [
    ("* * * * *", "deployments.tasks.schedule_deployments"),
    ("* * * * *", "runs.tasks.mark_late_runs"),
    ("* * * * *", "runs.tasks.fail_expired_pauses"),
    ("* * * * *", "workpools.tasks.recover_lost_runs"),
    ("17 * * * *", "runs.tasks.delete_old_runs"),
]
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")
CRONTAB_LOCK_JOBS = True
# cron starts jobs with a bare environment: put DATABASE_URL=... etc. here for them.
CRONTAB_COMMAND_PREFIX = env_str("CRONTAB_COMMAND_PREFIX", "")

# --- Orchestrator behaviour ------------------------------------------------------------------
# Workers heartbeat on this interval; a worker (and its runs) is presumed dead after
# WORKER_HEARTBEAT_MISSES intervals without one.
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
WORKER_HEARTBEAT_MISSES = env_int("WORKER_HEARTBEAT_MISSES", 3, minimum=1)
# Flow-run processes heartbeat their run on this interval; a run whose heartbeat is older than
# RUN_HEARTBEAT_MISSES intervals is presumed dead and marked CRASHED by the reaper.
RUN_HEARTBEAT_SECONDS = env_float("RUN_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
RUN_HEARTBEAT_MISSES = env_int("RUN_HEARTBEAT_MISSES", 3, minimum=1)
# Run tokens (the credential a worker gives each run's job instead of its own key) expire after
# this long, and stop working as soon as the run is final; the run's last log lines are still
# taken for RUN_TOKEN_LOG_GRACE_SECONDS after that.
RUN_TOKEN_TTL_SECONDS = env_int("RUN_TOKEN_TTL_SECONDS", 24 * 3600, minimum=60)
RUN_TOKEN_LOG_GRACE_SECONDS = env_int("RUN_TOKEN_LOG_GRACE_SECONDS", 60, minimum=0)
# A run asked to cancel whose worker has not confirmed within this time is marked CANCELLED
# by the reaper, so its slot is never leaked.
CANCELLING_TIMEOUT_SECONDS = env_float("CANCELLING_TIMEOUT_SECONDS", 120.0, minimum=1)
# Threads a flow run's task runner may use for submitted and mapped tasks.
TASK_RUNNER_MAX_WORKERS = env_int("TASK_RUNNER_MAX_WORKERS", 16, minimum=1)
# A queue is READY while some worker polled it within this many seconds.
QUEUE_READY_SECONDS = env_float("QUEUE_READY_SECONDS", 60.0, minimum=1)
# A run still SCHEDULED this long past its time is renamed Late.
LATE_RUN_SECONDS = env_float("LATE_RUN_SECONDS", 15.0, minimum=0)
# The scheduler keeps runs for each active schedule: at least SCHEDULER_MIN_RUNS and at least
# SCHEDULER_MIN_AHEAD_SECONDS ahead, at most SCHEDULER_MAX_RUNS, none beyond the horizon.
SCHEDULER_MIN_RUNS = env_int("SCHEDULER_MIN_RUNS", 3, minimum=1)
SCHEDULER_MIN_AHEAD_SECONDS = env_float("SCHEDULER_MIN_AHEAD_SECONDS", 3600.0, minimum=0)
SCHEDULER_MAX_RUNS = env_int("SCHEDULER_MAX_RUNS", 100, minimum=1)
SCHEDULER_HORIZON_DAYS = env_float("SCHEDULER_HORIZON_DAYS", 100.0, minimum=0.001)
# Finished runs (with their logs) older than this many days are deleted; 0 keeps everything.
RUN_RETENTION_DAYS = env_float("RUN_RETENTION_DAYS", 0.0, minimum=0)
# A worker's claim may wait this long for a run to become due (long poll), and at most this
# many claims of one web process wait at once (each holds a web thread meanwhile).
CLAIM_MAX_WAIT_SECONDS = env_float("CLAIM_MAX_WAIT_SECONDS", 20.0, minimum=0)
CLAIM_MAX_WAITERS = env_int("CLAIM_MAX_WAITERS", 8, minimum=0)
# The direct transport (workers and flow runs beside the database) rides out a lost database
# connection (a PostgreSQL restart) for this long: it reconnects and tries each call again.
DIRECT_RETRY_SECONDS = env_float("DIRECT_RETRY_SECONDS", 120.0, minimum=0)
# A worker relays at most this many bytes of each flow run's output (stdout/stderr) to its own
# output; the rest is dropped with one line saying so (the run's logs are stored regardless).
WORKER_OUTPUT_MAX_BYTES = env_int("WORKER_OUTPUT_MAX_BYTES", 1024 * 1024, minimum=0)

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: its WWW-Authenticate header makes a request without credentials a 401.
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browsable API
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_PAGINATION_CLASS": "orchestrator.api_policy.PagePagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # One input policy for JSON bodies (orchestrator.input_policy): bounded depth, no NUL, no
    # lone surrogates, each refused with a 400 naming the field.
    "DEFAULT_PARSER_CLASSES": [
        "orchestrator.input_policy.PolicyJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["orchestrator.api_policy.KeyRateThrottle"],
    "EXCEPTION_HANDLER": "orchestrator.api_policy.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
# Requests per API key (or user, or address without either); "" turns throttling off.
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "1200/min")
# The same for worker keys, whose workers and flow runs call the API for every state change,
# task run and batch of logs; "" (the default) leaves them unthrottled.
API_WORKER_THROTTLE_RATE = env_str("API_WORKER_THROTTLE_RATE", "")
# Larger request bodies to /api/ and /hooks/ are refused with 413.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1)
SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestrator API",
    "DESCRIPTION": "Work pools, deployments and flow runs. Send `Authorization: Bearer <key>` "
    "(manage.py apikey create NAME --scope read|trigger|write|worker).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["accounts.permissions.HasScope"],  # the schema and docs need a key or a login
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "StateTypeEnum": "orchestrator.core.states.StateType",
        "WorkPoolTypeEnum": "workpools.models.pool_type_choices",  # every registered type
        "ArtifactTypeEnum": "runs.models.ArtifactType",
    },
}
# Automations' notifications: a failing URL is tried this many times more, waiting
# base * 2**attempt seconds between tries (capped), each try with this timeout.
NOTIFICATION_MAX_RETRIES = env_int("NOTIFICATION_MAX_RETRIES", 5, minimum=0)
NOTIFICATION_BACKOFF_SECONDS = env_float("NOTIFICATION_BACKOFF_SECONDS", 10.0, minimum=0)
NOTIFICATION_BACKOFF_MAX_SECONDS = env_float("NOTIFICATION_BACKOFF_MAX_SECONDS", 3600.0, minimum=0)
NOTIFICATION_TIMEOUT_SECONDS = env_float("NOTIFICATION_TIMEOUT_SECONDS", 10.0, minimum=0.1)

# Bootstrap admin for `make up`: created on first run with this password, or a random one
# printed once.
ADMIN_USERNAME = env_str("ORCHESTRATOR_ADMIN_USERNAME", "admin")
ADMIN_PASSWORD = env_str("ORCHESTRATOR_ADMIN_PASSWORD", "")

# The role of a signed-in user in no role group (accounts.roles): admin keeps the behaviour from
# before roles; viewer makes accounts read-only until `manage.py role add USER ROLE`.
DEFAULT_ROLE = env_str("DEFAULT_ROLE", "admin").strip().lower()
if DEFAULT_ROLE not in ("viewer", "operator", "admin"):
    raise ImproperlyConfigured(f"DEFAULT_ROLE must be viewer, operator or admin, not {DEFAULT_ROLE!r}.")

# Logs as text (plain) or one JSON object per line (json).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower() or "plain"
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")

# /metrics: scrapes from these addresses or networks need no key (else a key with the metrics
# scope); figures about finished runs cover the last METRICS_WINDOW_SECONDS, histograms at most
# METRICS_MAX_SAMPLES runs of it.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
for _item in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_item, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_item!r} is not an address or network.") from None
METRICS_WINDOW_SECONDS = env_float("METRICS_WINDOW_SECONDS", 3600.0, minimum=1)
METRICS_MAX_SAMPLES = env_int("METRICS_MAX_SAMPLES", 10000, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"},
        "json": {"()": "orchestrator.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu warns that a filesystem:// URL names no host, which is true and harmless.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}

# An optional, git-ignored local_settings.py next to this file overrides anything above.
try:
    from orchestrator.local_settings import *  # noqa: F401,F403
except ImportError:
    pass
