"""Settings shared by every environment. Environment values are read through `config.settings.env`."""

from __future__ import annotations

from datetime import timedelta

from django.utils.translation import gettext_lazy as _

from .env import BASE_DIR, ConfigError, env, fail, otel_traces_requested, secret

DEBUG = False
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "apps.portal.errors.csrf_failure"  # a branded page in the page language

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "oauth2_provider",
    # Bounded contexts (see DESIGN.md). Order: reference data first, interfaces last.
    "apps.core",
    "apps.audit",
    "apps.catalog",
    "apps.patients",
    "apps.outbox",
    "apps.scheduling",
    "apps.booking",
    "apps.notifications",
    "apps.integration",
    "apps.reconciliation",
    "apps.portal",
    "apps.staff",
    "apps.operations",
    "apps.fhir",
    "apps.opendata",
]

MIDDLEWARE = [
    "apps.operations.middleware.RequestContextMiddleware",  # first: request id and HTTP metrics
    "apps.core.dbrouter.PrimaryAfterWriteMiddleware",  # read-your-writes when a replica serves reads
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "apps.core.middleware.PolishFirstMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.RedisOutageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    if not url.startswith(("postgres://", "postgresql://")):
        raise ValueError("DATABASE_URL is malformed: expected postgres://user@host:port/name")
    db = env.db_url_config(url)
    # `postgres://user@/name?host=/socket/dir` (the embedded server) puts the socket into OPTIONS.
    options = db.setdefault("OPTIONS", {})
    if not db.get("HOST") and "host" in options:
        db["HOST"] = options.pop("host")
    # Persistent connections: a booking must not pay for a new connection (DESIGN.md section 8).
    db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    db["CONN_HEALTH_CHECKS"] = True
    # Lets `apps.core.queries.prepared_cursor` (the booking's hot statements) use server-side prepared
    # statements; Django's own cursors bind on the client and never prepare, whatever this says.
    options.setdefault("prepare_threshold", 5)
    # No JIT compilation: PostgreSQL compiles any statement whose estimate passes `jit_above_cost`, and
    # the estimate of a LIMIT walk down an index is its whole table's: the waiting list's candidates
    # statement spent 0.87 s of its 1.2 s compiling 112 functions, on every run (docs/performance.md e).
    # What runs here is many short statements; the reconciliation month ran 31 % faster without it
    # (docs/performance.md d).
    options["options"] = " ".join(filter(None, [options.get("options", ""), "-c jit=off"]))
    return db


DATABASE_URL = secret("DATABASE_URL")
try:
    DATABASES = {"default": database_from_url(DATABASE_URL)} if DATABASE_URL else {}
except ValueError as exc:
    fail(ConfigError(str(exc)))
# A streaming replica for search, the open-data reads and staff reports (apps/core/dbrouter.py,
# docs/scaling.md); without DATABASE_REPLICA_URL everything reads from `default`. A browser that has
# just written reads from `default` for CER_REPLICA_STICKY_SECONDS (more than the replica's lag).
DATABASE_REPLICA_URL = secret("DATABASE_REPLICA_URL")
try:
    if DATABASE_REPLICA_URL and DATABASES:
        DATABASES["replica"] = {**database_from_url(DATABASE_REPLICA_URL), "TEST": {"MIRROR": "default"}}
        # A replica that went away must not hold a request for the kernel's TCP timeout: after this many
        # seconds the read goes to the primary instead (apps/core/dbrouter.py).
        replica_options = DATABASES["replica"]["OPTIONS"]
        replica_options.setdefault("connect_timeout", env.int("CER_REPLICA_CONNECT_TIMEOUT", default=2))
except ValueError as exc:
    fail(ConfigError(str(exc).replace("DATABASE_URL", "DATABASE_REPLICA_URL")))
DATABASE_ROUTERS = ["apps.core.dbrouter.ReplicaRouter"]
CER_REPLICA_STICKY_SECONDS = env.int("CER_REPLICA_STICKY_SECONDS", default=10)
# Reads leave the replica while it is down or more than CER_REPLICA_MAX_LAG_SECONDS behind; each process
# asks it at most every CER_REPLICA_CHECK_SECONDS (apps/core/dbrouter.py).
CER_REPLICA_MAX_LAG_SECONDS = env.float("CER_REPLICA_MAX_LAG_SECONDS", default=30.0)
CER_REPLICA_CHECK_SECONDS = env.float("CER_REPLICA_CHECK_SECONDS", default=5.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = secret("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "apps.core.cache.RedisCache",  # Django's, reusing its Redis client objects
        "LOCATION": REDIS_URL or "redis://127.0.0.1:6379/0",
        "KEY_PREFIX": "cer",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:appointments"
LOGOUT_REDIRECT_URL = "portal:home"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

# Patient sign-in through the national login service (OpenID Connect), on only when configured.
# Endpoints come from the issuer's discovery document, given here explicitly (mozilla-django-oidc
# does not discover them).
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
if OIDC_RP_CLIENT_ID:
    OIDC_RP_CLIENT_SECRET = secret("OIDC_RP_CLIENT_SECRET")
    _issuer = env.str("OIDC_ISSUER").rstrip("/")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default=f"{_issuer}/authorize")
    OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default=f"{_issuer}/token")
    OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default=f"{_issuer}/userinfo")
    OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default=f"{_issuer}/jwks")
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_RP_SCOPES = "openid profile"
    CER_OIDC_PESEL_CLAIM = env.str("CER_OIDC_PESEL_CLAIM", default="pesel")
    LOGIN_REDIRECT_URL_FAILURE = "/login/"
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "apps.portal.oidc.NationalLoginBackend"]

# Polish first, English too. Store UTC, show Europe/Warsaw.
LANGUAGE_CODE = "pl"
LANGUAGES = [("pl", _("Polish")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Warsaw"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Bodies larger than this are refused before parsing (bulk publish of 10,000 slots fits well below).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# Django's database sessions with the read as a prepared statement (issue 19, apps/core/sessions.py).
SESSION_ENGINE = "apps.core.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Celery (broker: Redis) -------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
# A pool process killed under a task (the out-of-memory killer's pick) returns the task to the queue at
# once; late acknowledgement alone would acknowledge it as failed. Tasks are idempotent (docs/operations.md).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
# Several beats may run (one per machine): only the holder of a PostgreSQL advisory lock sends, the
# others stand by and take over when it dies (apps/core/beat.py). Last run times are saved after every
# send, so a promoted standby does not send a tick again.
CELERY_BEAT_SCHEDULER = "apps.core.beat:LeaderDatabaseScheduler"
CELERY_BEAT_SYNC_EVERY = 1
CER_BEAT_STANDBY_SECONDS = env.float("CER_BEAT_STANDBY_SECONDS", default=5.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "apps.core.api_errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.integration.schema.IntegrationAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Centralna e-Rejestracja (CeR) - facility integration API",
    "DESCRIPTION": (
        "The API through which facility systems (HIS/RIS) publish schedules, register bookings "
        "taken at the desk, report outcomes and follow changes. Authenticate with OAuth 2 client "
        "credentials issued by NFZ. Errors are RFC 9457 application/problem+json."
    ),
    "VERSION": "1.4.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

# django-oauth-toolkit's own models (named explicitly: its migrations and checks read these).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105 (a model name)
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"  # noqa: S105
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"

OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "SCOPES": {
        "schedules:read": "Read own schedules and slots",
        "schedules:write": "Publish and change own schedules and slots",
        "bookings:read": "Read own bookings",
        "bookings:write": "Register, cancel, reschedule and confirm bookings",
        "outcomes:write": "Report visit outcomes",
        "visits:write": "Report visits for settlement",
        "webhooks:manage": "Manage webhook subscriptions",
        "waitlist:read": "Read the waiting-list entries you registered, with their position",
        "waitlist:write": "Put patients on the central waiting list and remove their entries",
    },
    "DEFAULT_SCOPES": ["schedules:read"],
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # RFC 9700 (OAuth 2.0 Security BCP) everywhere; token storage hashed, so a database leak is no key.
    **{
        f"COMPLIANT_BCP_RFC9700_{name}": True
        for name in (
            "ACCESS_TOKEN_TRANSPORT",
            "AUTHZ_RESPONSE_ISS",
            "IMPLICIT_GRANT",
            "PASSWORD_GRANT",
            "PKCE_METHOD",
            "PKCE_REQUIRED",
            "REDIRECT_URI_MATCHING",
            "REDIRECT_URI_SCHEME",
            "REFRESH_TOKEN",
            "TOKEN_STORAGE",
        )
    },
}

# --- Domain knobs that are deployment choices, not rules (rules live in the catalogue) ----------
CER_HOLD_SECONDS = env.int("CER_HOLD_SECONDS", default=600)
# Month partitions of the slot table (apps/scheduling/partitions.py): made this many months ahead of
# the current one (not as far as the catalogue's publish horizon: every attached partition costs each
# booking statement, docs/scaling.md; a slot published further waits in DEFAULT until its month is
# made); detached once they ended this many months ago (0: never).
CER_SLOT_PARTITIONS_AHEAD = env.int("CER_SLOT_PARTITIONS_AHEAD", default=3)
CER_SLOT_PARTITIONS_KEEP_MONTHS = env.int("CER_SLOT_PARTITIONS_KEEP_MONTHS", default=36)
# Month partitions of the appointments (apps/booking/partitions.py): made as far ahead as the slots' (a
# booking is made on a published slot); detached once they ended this many months ago (0: never): 28, the
# settlement window (730 days) and its month, as long as a late-reported visit may still be reconciled
# against them. Every attached partition costs each statement that names an appointment by id alone
# (~17 us, docs/scaling.md), so the archive, not the live table, keeps the years after that.
CER_APPOINTMENT_PARTITIONS_AHEAD = env.int(
    "CER_APPOINTMENT_PARTITIONS_AHEAD", default=CER_SLOT_PARTITIONS_AHEAD
)
CER_APPOINTMENT_PARTITIONS_KEEP_MONTHS = env.int("CER_APPOINTMENT_PARTITIONS_KEEP_MONTHS", default=28)
# Month partitions of the outbox (apps/outbox/partitions.py), detached with the delivery log of their
# events once they ended this many months ago (0: never). The outbox is a transport: every event must
# outlive the longest outage of a consumer (a facility system reading the changes feed, a webhook
# receiver whose failed deliveries are re-sent on demand: days), and nothing else reads old events.
CER_OUTBOX_PARTITIONS_AHEAD = env.int("CER_OUTBOX_PARTITIONS_AHEAD", default=2)
CER_OUTBOX_PARTITIONS_KEEP_MONTHS = env.int("CER_OUTBOX_PARTITIONS_KEEP_MONTHS", default=3)
# Month partitions of the reported visits and verdicts (apps/reconciliation/partitions.py). Visits are
# never in the future and runs settle ended periods: 2 months ahead is margin for a failing job. Kept
# 96 months (8 years): a visit may be reported, and its month settled again, up to the settlement window
# (730 days) after it, and settlement evidence is kept 5 years counted from the start of the year after
# the financial year it belongs to (Accounting Act, art. 74): 24 + 12 + 60 = 96. Never fewer months than
# the settlement window (partitions.months_kept); 0: never detach.
CER_RECONCILIATION_PARTITIONS_AHEAD = env.int("CER_RECONCILIATION_PARTITIONS_AHEAD", default=2)
CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS = env.int("CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS", default=96)
# The public address of the patient pages, for links in SMS and e-mail (composed off any request).
CER_PUBLIC_URL = env.str("CER_PUBLIC_URL", default="http://localhost:8000")
# Wrong e-referral access codes: this many tries for one referral number lock it for this long.
CER_REFERRAL_MAX_ATTEMPTS = env.int("CER_REFERRAL_MAX_ATTEMPTS", default=5)
CER_REFERRAL_LOCK_SECONDS = env.int("CER_REFERRAL_LOCK_SECONDS", default=900)
CER_API_RATE_LIMIT = env.int("CER_API_RATE_LIMIT", default=600)  # requests per window per client
CER_API_RATE_WINDOW = env.int("CER_API_RATE_WINDOW", default=60)
CER_WEBHOOK_MAX_ATTEMPTS = env.int("CER_WEBHOOK_MAX_ATTEMPTS", default=8)
# Key that encrypts stored webhook signing secrets (falls back to SECRET_KEY; changing it
# invalidates stored secrets). Plain-http and private-address webhook targets stay refused.
CER_WEBHOOK_SECRET_KEY = secret("CER_WEBHOOK_SECRET_KEY")
CER_WEBHOOK_ALLOW_HTTP = env.bool("CER_WEBHOOK_ALLOW_HTTP", default=False)
CER_WEBHOOK_ALLOW_PRIVATE = env.bool("CER_WEBHOOK_ALLOW_PRIVATE", default=False)
CER_OTP_TTL = timedelta(minutes=10)
# Shared with the SMS operator to sign inbound-SMS webhooks; without it the webhook answers 404.
CER_SMS_WEBHOOK_SECRET = secret("CER_SMS_WEBHOOK_SECRET")
# Who identifies a patient CeR has never seen (desk bookings, facility waiting-list entries):
# docs/patient-registry.md. The default keeps what the facility confirmed, with its source.
CER_PATIENT_REGISTRY = env.str("CER_PATIENT_REGISTRY", default="apps.patients.registry.LocalRegistry")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CeR <no-reply@cer.example.gov.pl>")

# --- Operations (docs/operations.md): JSON logs, metrics, traces --------------------------------
LOG_FORMAT = env.str("LOG_FORMAT", default="json")  # "plain" for a human at a terminal
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "apps.operations.logs.ContextFilter"},
        "expected_refusals": {"()": "apps.operations.logs.ExpectedRefusalFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "apps.operations.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["expected_refusals"]},
    },
}
# Celery workers log through the same configuration (JSON, request id) instead of their own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# /metrics answers only a scrape with this bearer token; without it the endpoint does not exist.
CER_METRICS_TOKEN = secret("CER_METRICS_TOKEN")
# Shared by the gunicorn and Celery processes of a machine (prometheus-client reads it too).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# A machine that runs only Celery workers: each worker serves its machine's metrics on this port (0:
# off), on loopback unless told otherwise; any other address needs CER_METRICS_TOKEN.
CER_WORKER_METRICS_PORT = env.int("CER_WORKER_METRICS_PORT", default=0)
CER_WORKER_METRICS_ADDR = env.str("CER_WORKER_METRICS_ADDR", default="127.0.0.1")
CER_TRACING = otel_traces_requested()
CER_OTEL_TRACES_EXPORTER = env.str("OTEL_TRACES_EXPORTER", default="otlp")
CER_OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="cer")

# --- Security hardening (issue 15) ---------------------------------------------------------------
# The token endpoint: requests per window per named client id and per address, counted before any
# secret is hashed (a legitimate client asks for a token about once an hour).
CER_TOKEN_RATE_LIMIT_CLIENT = env.int("CER_TOKEN_RATE_LIMIT_CLIENT", default=20)
CER_TOKEN_RATE_LIMIT_ADDRESS = env.int("CER_TOKEN_RATE_LIMIT_ADDRESS", default=60)
CER_TOKEN_RATE_WINDOW = env.int("CER_TOKEN_RATE_WINDOW", default=60)
# Webhook targets: ports a subscription may name (apps/integration/egress.py), and how many
# subscriptions and redeliveries one client may ask for per hour.
CER_WEBHOOK_PORTS: list[int] = [int(p) for p in env.list("CER_WEBHOOK_PORTS", default=["443", "8443"])]
CER_WEBHOOK_MANAGE_RATE_LIMIT = env.int("CER_WEBHOOK_MANAGE_RATE_LIMIT", default=30)
# Patient sign-in by one-time code (development and demo; production signs in through OIDC unless
# CER_PATIENT_CODE_SIGNIN=true): code requests per address per code TTL, and the least time a code
# request's answer takes, known PESEL or not (sending the code is the slow part).
CER_PATIENT_CODE_SIGNIN = env.bool("CER_PATIENT_CODE_SIGNIN", default=True)
CER_SIGNIN_RATE_LIMIT_ADDRESS = env.int("CER_SIGNIN_RATE_LIMIT_ADDRESS", default=10)
CER_SIGNIN_MIN_SECONDS = env.float("CER_SIGNIN_MIN_SECONDS", default=0.4)
# Demo data (`seed_demo`: demo log-ins with known passwords) only where a settings module allows it.
CER_DEMO_DATA = False

# Staff: a second factor (django-otp: TOTP and recovery codes), lockout after failed passwords
# (django-axes), idle and absolute session limits (apps.core.middleware.SessionLimitsMiddleware);
# the API docs' assets served from the project (drf-spectacular-sidecar).
INSTALLED_APPS += [
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "drf_spectacular_sidecar",
]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "django_otp.middleware.OTPMiddleware",
)
MIDDLEWARE += ["apps.core.middleware.SessionLimitsMiddleware", "axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one too many: a lockout
AXES_RESET_ON_SUCCESS = True
AXES_SENSITIVE_PARAMETERS = ["password", "token"]
OTP_TOTP_ISSUER = "CeR NFZ"
CER_SESSION_IDLE_SECONDS = env.int("CER_SESSION_IDLE_SECONDS", default=15 * 60)
CER_SESSION_ABSOLUTE_SECONDS = env.int("CER_SESSION_ABSOLUTE_SECONDS", default=8 * 3600)
SESSION_COOKIE_AGE = CER_SESSION_ABSOLUTE_SECONDS
OAUTH2_PROVIDER["SCOPES"]["changes:read"] = "Read the changes feed of own facility"  # type: ignore[index]
SPECTACULAR_SETTINGS.update(
    {"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}
)
MIDDLEWARE.insert(1, "apps.core.middleware.SecurityHeadersMiddleware")

# Open data (apps.opendata): the public `queues` resource is limited per client address.
CER_OPENDATA_RATE_LIMIT = env.int("CER_OPENDATA_RATE_LIMIT", default=10)  # requests per window per address
CER_OPENDATA_RATE_WINDOW = env.int("CER_OPENDATA_RATE_WINDOW", default=1)
