"""Settings for the approval console: one module, configured from the environment.

With nothing set, the console runs embedded: SQLite under var/, the in-memory channel layer and
Celery on kombu's filesystem transport, so it starts anywhere without servers. Setting
DATABASE_URL (postgres://...) and REDIS_URL (redis://...) switches to PostgreSQL with a
connection pool, the Redis channel layer and Redis as Celery broker. Only configuration differs
between the two; no code path does.
"""

# long: every setting in one module, grouped by concern: what an operator searches

import os
import stat
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from console.first_run import file_made_once

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONSOLE_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once and kept under var/.

    A generated key keeps `make run` zero-configuration while still never shipping a known key.
    """
    if key := env_str("SECRET_KEY"):
        return key
    from django.core.management import utils

    return file_made_once(VAR_DIR / "secret_key", utils.get_random_secret_key).strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The public base URL, used for links in emails and chat messages. Unset, the local console on
# CONSOLE_PORT: `make run` passes its PORT as CONSOLE_PORT to every process (honcho gives each
# process a PORT of its own), so the worker's email links point where the console really is.
SITE_URL = (env_str("SITE_URL") or f"http://127.0.0.1:{env_int('CONSOLE_PORT', 8000)}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # naturaltime: "just now"-style ages, not "0 minutes ago"
    "channels",
    "django_htmx",
    "rest_framework",
    "knox",  # reviewer API tokens for scripts, stored as digests (approvals/reviewer_tokens.py)
    "axes",  # sign-in throttling (console/login_throttle.py)
    "drf_spectacular",
    "agents",
    "approvals",
]

MIDDLEWARE = [
    "console.middleware.RequestIdMiddleware",
    "console.middleware.ApiBodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- Private files under var/ ---------------------------------------------------------------
# var/ holds the generated SECRET_KEY, the embedded database and the task queue: readable by the
# console's own user only. Created with the umask (typically 0755/0644) they were readable by
# every local account.
def private_dir(path: Path) -> Path:
    """Create `path` (with parents) as 0700, and tighten it if it exists more open than that."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty as 0600 unless it exists, and tighten it if it is more open."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    _tighten(path, 0o600)
    return path


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode == 0:
        return
    try:
        path.chmod(current & mode)
    except OSError as error:  # not ours to change (another owner, a read-only mount): say so
        warnings.warn(
            f"{path} is mode {current:o}, readable beyond the console's user, and could not be "
            f"made {mode:o} ({error.strerror}): restrict it yourself",
            stacklevel=2,
        )


# Whatever made var/ (the generated key above, an older version), it is the console's alone. Not
# created here: a deployment configured wholly from the environment may have no writable var/.
if VAR_DIR.is_dir():
    _tighten(VAR_DIR, 0o700)

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL)
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, which says at once why it cannot connect (a database that does not
        # exist, a server that refuses) instead of waiting for the pool's timeout.
        _db["ENGINE"] = "console.postgresql"
        # Without a pool, PostgreSQL-backed requests were about 3x slower (measured on a
        # 2-core machine, DRF POST under uvicorn).
        # A pool requires CONN_MAX_AGE = 0: the pool, not Django, keeps connections open.
        _db["CONN_MAX_AGE"] = 0
        # The pool checks a connection before handing it out (one round trip): after a
        # PostgreSQL restart, connections it held are dead and are replaced, not used and failed.
        _db["CONN_HEALTH_CHECKS"] = True
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN", 2),
            "max_size": env_int("DATABASE_POOL_MAX", 20),
            # With the database gone, a call waits this long for a connection, then answers 503
            # dependency_unavailable (console/dependency_errors.py) instead of hanging.
            "timeout": env_int("DATABASE_POOL_TIMEOUT", 3),
        }
        # A host that does not answer at all (not a refusal): give up on a connection after this.
        _db["OPTIONS"].setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 3))
        # The agents' hot path prepares its own few fixed statements once per connection
        # (console/hot_statements.py; Django's ORM never prepares). Off for a connection pooler
        # that cannot keep prepared statements (PgBouncer before 1.21).
        _db["OPTIONS"]["prepare_threshold"] = (
            0 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
        )
    DATABASES = {"default": _db}
else:
    private_dir(VAR_DIR)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # Pre-created 0600 (an empty file is an empty database): SQLite would create it with
            # the umask, and gives its -wal and -shm files the database file's own mode.
            "NAME": str(private_file(VAR_DIR / "console.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on the
                # timeout instead of failing with "database is locked" mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # The tests' database is a file of each pytest run's own (tests/conftest.py).
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Realtime (Channels) and tasks (Celery) --------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CHANNEL_LAYER_PREFIX = env_str("CHANNEL_LAYER_PREFIX", "console")
if REDIS_URL:
    # Redis pub/sub: a push to a group is one PUBLISH, received once by each server process and
    # handed to its local members there. The list-based core layer wrote one copy per member
    # (500 reviewer sockets: 500 copies, popped one by one). Pub/sub delivers at most once and
    # nothing queues while a process is disconnected: enough for pushes, which are best-effort
    # wake-ups over the database's truth (approvals/realtime.py).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX},
        }
    }
else:
    # Per process: fine for the embedded single server process; several processes need Redis.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# Rate-limit counters (agents/aap/limits.py) must be shared by all server processes.
# A Redis that stops answering (a host gone, not a refused connection) must not hang its callers:
# every use of the cache takes a failure as "unknown" and goes on (per-process counters, a push
# sent anyway), so a call gives up after a second.
REDIS_CACHE_OPTIONS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "console.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": REDIS_CACHE_OPTIONS,
        }
    }

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker consumes on one broker channel, its tasks': no remote-control mailbox (this), no gossip
# and no mingle (CELERY_WORKER_CONSUMER, below, whatever the command line). With another channel, a
# Redis that dropped while a task ran could end the worker for good (Celery 5.7, kombu 5.7): when
# that channel's socket failed first, cleaning up the lost connection reached the task channel
# only after kombu had detached the transport from its connection, and putting the running
# task's message back read the broker's address from nothing ("Unrecoverable error:
# AttributeError(... 'hostname')"). Nothing here uses remote control (`celery inspect`, revoke);
# a supervisor watches the worker instead (docs/operations.md, "Supervising the processes").
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# Gossip and mingle have no setting of their own: this consumer turns them off for every worker
# started with `-A console`, with or without `--without-gossip --without-mingle`.
CELERY_WORKER_CONSUMER = "console.worker_consumer:OneChannelConsumer"
# The worker's timer thread sleeps at most this long between checks (default 1 s); a warm
# shutdown waits for it, twice: about a second off every stop (Ctrl-C on `make run`, a deploy).
CELERY_WORKER_TIMER_PRECISION = 0.1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if REDIS_URL:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
    # Every broker key (queues, bindings, unacked messages) under a prefix: consoles that share
    # one Redis database never take each other's tasks. Empty by default: the keys of releases
    # before it, so tasks queued across an upgrade are still found.
    if _broker_prefix := env_str("CELERY_BROKER_PREFIX", ""):
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = _broker_prefix
else:
    _queue_dir = private_dir(VAR_DIR) / "celery"
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    # A host name, though the transport ignores it: without one kombu warns "No hostname was
    # supplied" each time a process connects (it clones the connection and fills the default).
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
    # kombu's filesystem transport, subclassed to write each message atomically (see there).
    CELERY_BROKER_TRANSPORT = "console.kombu_filesystem:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        # Without it kombu writes a relative control/ folder wherever the worker starts.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }

# How often beat sweeps for pending requests past their deadline (seconds). Reads expire
# overdue requests too, so an agent never sees a late approval whatever this is set to.
APPROVAL_EXPIRY_SWEEP_SECONDS = env_int("APPROVAL_EXPIRY_SWEEP_SECONDS", 5)

# --- Approval rules --------------------------------------------------------------------------
APPROVAL_DEFAULT_TIMEOUT_SECONDS = env_int("APPROVAL_DEFAULT_TIMEOUT_SECONDS", 30 * 60)
APPROVAL_MAX_TIMEOUT_SECONDS = env_int("APPROVAL_MAX_TIMEOUT_SECONDS", 24 * 60 * 60)
# How long an approval lets the agent start the call (AAP decision.expires_at).
APPROVAL_VALIDITY_SECONDS = env_int("APPROVAL_VALIDITY_SECONDS", 5 * 60)
# The longest one long poll waits before answering `pending`; agents then ask again. The memory
# benchmark raises it so its polls stay parked while it measures.
APPROVAL_LONG_POLL_MAX_SECONDS = env_int("APPROVAL_LONG_POLL_MAX_SECONDS", 30)
# `make bench` only: serves /bench/bare, the baseline the agent API is measured against.
BENCH_ENDPOINTS = env_bool("BENCH_ENDPOINTS", False)
# Reviewer console: how long a claim (soft lock) lasts, and how close a deadline puts a request
# at the top of the queue whatever its risk.
APPROVAL_CLAIM_SECONDS = env_int("APPROVAL_CLAIM_SECONDS", 10 * 60)
APPROVAL_URGENT_SECONDS = env_int("APPROVAL_URGENT_SECONDS", 5 * 60)
# A decision page's socket pings this often; "looking now" older than twice this is a dead
# page or server process: not shown, and swept by beat.
APPROVAL_PRESENCE_HEARTBEAT_SECONDS = env_int("APPROVAL_PRESENCE_HEARTBEAT_SECONDS", 20)

# --- Notifications and escalation -----------------------------------------------------------
# SMTP from the environment (EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
# EMAIL_USE_TLS), as a Django 6.1 mailer. Without EMAIL_HOST, the log says a message was not
# sent (recipients and subject, never the body: console/mail.py), so the embedded setup never
# tries to reach a mail server that is not there and never writes a reset link to the log.
_email_host = env_str("EMAIL_HOST")
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": _email_host,
            "port": env_int("EMAIL_PORT", 587 if env_bool("EMAIL_USE_TLS") else 25),
            "username": env_str("EMAIL_HOST_USER"),
            "password": env_str("EMAIL_HOST_PASSWORD"),
            "use_tls": env_bool("EMAIL_USE_TLS", False),
            "timeout": env_int("EMAIL_TIMEOUT", 10),
        },
    }
    if _email_host
    else {"BACKEND": "console.mail.LogOnlyEmailBackend"}
}
# Password reset mails a link that signs in as the account: served only with a mail server to
# carry it (404 otherwise, and the login page does not offer it). PASSWORD_RESET_ENABLED=false
# turns it off with one, e.g. where accounts are managed elsewhere.
PASSWORD_RESET_ENABLED = env_bool("PASSWORD_RESET_ENABLED", bool(_email_host))
if PASSWORD_RESET_ENABLED and not _email_host:
    raise ImproperlyConfigured("PASSWORD_RESET_ENABLED=true needs a mail server: set EMAIL_HOST")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Approval console <approvals@localhost>")

SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN")
SLACK_SIGNING_SECRET = env_str("SLACK_SIGNING_SECRET")
# Tests point the SDK at a local server; in production it is Slack's own API.
SLACK_API_BASE_URL = env_str("SLACK_API_BASE_URL", "https://slack.com/api/")

# Outbox delivery: tries per notification, and the backoff between them (base * 2^n, capped).
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 8)
NOTIFICATION_BACKOFF_BASE_SECONDS = env_int("NOTIFICATION_BACKOFF_BASE_SECONDS", 10)
NOTIFICATION_BACKOFF_MAX_SECONDS = env_int("NOTIFICATION_BACKOFF_MAX_SECONDS", 15 * 60)
# How long a worker owns a claimed row; longer than any single send may take.
NOTIFICATION_LEASE_SECONDS = env_int("NOTIFICATION_LEASE_SECONDS", 120)
# Beat re-enqueues due rows that have waited this long: a lost enqueue costs at most this.
NOTIFICATION_REQUEUE_AFTER_SECONDS = env_int("NOTIFICATION_REQUEUE_AFTER_SECONDS", 30)
NOTIFICATION_SWEEP_SECONDS = env_int("NOTIFICATION_SWEEP_SECONDS", 15)
# One person reached twice for one request (team, then an escalation step naming them) within
# this window gets one message per channel: the later one is skipped as a duplicate.
NOTIFICATION_FOLD_WINDOW_SECONDS = env_int("NOTIFICATION_FOLD_WINDOW_SECONDS", 600)
# A reviewer in immediate mode who was sent this many emails in the last hour gets the rest in
# a digest every NOTIFICATION_AUTO_DIGEST_MINUTES, told so in it (0: never switch).
NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR = env_int(
    "NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR", 6
)
NOTIFICATION_AUTO_DIGEST_MINUTES = env_int("NOTIFICATION_AUTO_DIGEST_MINUTES", 15)
# How often beat looks for digest emails that are due (each reviewer's own interval applies).
NOTIFICATION_DIGEST_SWEEP_SECONDS = env_int("NOTIFICATION_DIGEST_SWEEP_SECONDS", 60)

# The chain used when a request's policy names none (by EscalationChain.name; empty: none).
ESCALATION_DEFAULT_CHAIN = env_str("ESCALATION_DEFAULT_CHAIN")
ESCALATION_SWEEP_SECONDS = env_int("ESCALATION_SWEEP_SECONDS", 5)
# No step is scheduled later than this many seconds before the deadline, so the last page
# still leaves someone time to act.
ESCALATION_DEADLINE_MARGIN_SECONDS = env_int("ESCALATION_DEADLINE_MARGIN_SECONDS", 60)

# --- Payload caps for the agent APIs -----------------------------------------------------------
# A larger body gets 413 before anything is parsed; a larger field or batch gets 400 naming it.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 256 * 1024)
# Serve agents' create and read/long-poll calls on the ASGI fast path (agents/api/fast_path.py);
# false sends them through Django like every other call (same answers, slower).
AGENT_API_FAST_PATH = env_bool("AGENT_API_FAST_PATH", True)
API_MAX_FIELD_BYTES = env_int("API_MAX_FIELD_BYTES", 64 * 1024)
TRACE_MAX_BATCH_EVENTS = env_int("TRACE_MAX_BATCH_EVENTS", 100)
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 64)

# AAP: how long a reviewer's suggested arguments (an edit turned into a denial) stay approvable.
APPROVAL_SUGGESTION_VALIDITY_SECONDS = env_int("APPROVAL_SUGGESTION_VALIDITY_SECONDS", 60 * 60)

# --- Agent Approval Protocol v1 ----------------------------------------------------------------
# Where the protocol is served: POST {AAP_BASE_PATH}/v1/requests.
AAP_BASE_PATH = "/" + env_str("AAP_BASE_PATH", "/aap").strip("/")
# A request's top-level `server` is an extension the reference client sends on MCP calls (the
# spec allows no extra fields): accepted and echoed by default; off, it is refused as unknown and
# never echoed, for clients that validate responses strictly.
AAP_ACCEPT_SERVER_FIELD = env_bool("AAP_ACCEPT_SERVER_FIELD", True)
# Off: webhook receivers must be public HTTPS hosts (the spec's SSRF rules). On, for self-hosted
# deployments: receivers on loopback and private networks are allowed, over HTTP too.
AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = env_bool("AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS", False)
AAP_WEBHOOK_TIMEOUT_SECONDS = env_int("AAP_WEBHOOK_TIMEOUT_SECONDS", 10)
# How long a worker owns a claimed webhook event before another may send it: longer than one
# attempt may take. A worker killed mid-send delays the event by this much (never loses it).
AAP_WEBHOOK_LEASE_SECONDS = env_int("AAP_WEBHOOK_LEASE_SECONDS", AAP_WEBHOOK_TIMEOUT_SECONDS + 30)
# Retries: exponential backoff with jitter from the base, capped, until the window ends.
AAP_WEBHOOK_RETRY_BASE_SECONDS = float(env_str("AAP_WEBHOOK_RETRY_BASE_SECONDS", "5"))
AAP_WEBHOOK_RETRY_MAX_SECONDS = float(env_str("AAP_WEBHOOK_RETRY_MAX_SECONDS", "3600"))
AAP_WEBHOOK_DELIVERY_WINDOW_SECONDS = env_int("AAP_WEBHOOK_DELIVERY_WINDOW_SECONDS", 7 * 24 * 3600)
# Abuse limits (fixed windows): receiver verifications per provisioner and per destination host
# per hour, and approval requests per instance per minute. Over them: 429 with Retry-After.
AAP_LIMIT_VERIFICATIONS_PER_PROVISIONER_HOUR = env_int(
    "AAP_LIMIT_VERIFICATIONS_PER_PROVISIONER_HOUR", 60
)
AAP_LIMIT_VERIFICATIONS_PER_HOST_HOUR = env_int("AAP_LIMIT_VERIFICATIONS_PER_HOST_HOUR", 120)
AAP_LIMIT_REQUESTS_PER_INSTANCE_MINUTE = env_int("AAP_LIMIT_REQUESTS_PER_INSTANCE_MINUTE", 600)
# Webhook delivery attempts (first tries and retries) per receiver host per minute; over it,
# delivery waits for the next window.
AAP_LIMIT_DELIVERIES_PER_HOST_MINUTE = env_int("AAP_LIMIT_DELIVERIES_PER_HOST_MINUTE", 600)
# How often beat re-enqueues due events whose task was lost (broker or worker outage).
AAP_WEBHOOK_SWEEP_SECONDS = env_int("AAP_WEBHOOK_SWEEP_SECONDS", 30)

# --- Auth and security -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "approvals:queue"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- HTTPS (SECURE_COOKIES, BEHIND_PROXY) ----------------------------------------------------
# SECURE_COOKIES=true says the console is reached over HTTPS only: cookies are sent over TLS
# only, browsers are told to keep to HTTPS (HSTS), and plain HTTP is redirected. Cookies marked
# Secure without HSTS still leave the first plain-HTTP visit open to a downgrade.
SECURE_COOKIES = env_bool("SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
if SECURE_COOKIES:
    # One year, what the HSTS preload list asks for; lower it while trying HTTPS out.
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    # Subdomains of the console's own host name (not of its parent domain).
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers and Prometheus probe these over plain HTTP inside the network; a redirect
    # would read as a failed health check.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Preloading is a commitment for a whole registrable domain, made by submitting it to the
# browsers' list: an operator's decision (SECURE_HSTS_PRELOAD=true), not a default to nag about.
SILENCED_SYSTEM_CHECKS = [] if env_bool("SECURE_HSTS_PRELOAD", False) else ["security.W021"]
# Behind TLS termination, the proxy says which scheme the client used. Only trust the header a
# proxy you run sets and overwrites (X-Forwarded-Proto unless PROXY_SSL_HEADER names another).
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + env_str("PROXY_SSL_HEADER", "X-Forwarded-Proto").upper().replace("-", "_"), "https")
    if BEHIND_PROXY
    else None
)
# The header your proxy sets to the client's address (e.g. X-Real-IP), for sign-in throttling
# and the audit trail. Unset: the peer's address. Never set it without a proxy that overwrites it.
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER")

# --- Sign-in throttling (django-axes) ---------------------------------------------------------
# Failed sign-ins are counted per username and, separately, per client address: per username
# stops guessing one account from many addresses, per address stops one client trying a common
# password on many accounts. LOGIN_FAILURE_LIMIT failures in a row on either lock it out for
# LOGIN_LOCKOUT_SECONDS; each further failure after a lockout ends locks it again for twice as
# long, up to LOGIN_LOCKOUT_MAX_SECONDS. A lockout by username can be caused by anyone who knows
# the name: the cap bounds that, and `manage.py axes_reset_username NAME` lifts it.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 5 * 60)
LOGIN_LOCKOUT_MAX_SECONDS = env_int("LOGIN_LOCKOUT_MAX_SECONDS", 60 * 60)
# Failures are forgotten after this long without a new one (at least twice the longest lockout).
LOGIN_FAILURE_MEMORY_SECONDS = env_int("LOGIN_FAILURE_MEMORY_SECONDS", 24 * 60 * 60)
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "console.login_throttle.GrowingLockoutHandler"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = "console.login_throttle.login_cool_off"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "console.request_context.client_ip_address"
# Attempts refused during a lockout neither count nor extend it: only failures after it ended
# make the next one longer (and a person retrying is not punished for every click).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The handler forgets the signed-in username's failures itself, never the address's: resetting
# those would let an attacker with one valid account clear the count of a password spray.
AXES_RESET_ON_SUCCESS = False
# Every failure is kept (outside the audit chain, so failed sign-ins never queue on its lock).
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "console.login_throttle.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["username", "password"]
AXES_VERBOSE = False

# Strict CSP: no inline script or style anywhere; every asset is served from our own static.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- REST framework --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["agents.authentication.AgentCredentialAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["agents.authentication.IsAgent"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["console.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "console.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
# Reviewer API tokens (django-rest-knox): `Authorization: Token acr_…`, valid this long (90 days
# by default), no silent renewal on use: a leaked token stops working on a known date.
REVIEWER_TOKEN_TTL_SECONDS = env_int("REVIEWER_TOKEN_TTL_SECONDS", 90 * 24 * 3600)
REST_KNOX = {
    "TOKEN_TTL": timedelta(seconds=REVIEWER_TOKEN_TTL_SECONDS),
    "TOKEN_PREFIX": "acr_",
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Approval Console API",
    "DESCRIPTION": (
        "Agents ask before acting: create an approval request, wait for the decision with a long "
        "poll, or cancel it. Authenticate with `Authorization: Bearer <agent credential>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several choice sets have a field named `status`: the request's is named, not numbered.
    "ENUM_NAME_OVERRIDES": {"ApprovalStatusEnum": "approvals.models.Status"},
}

# --- Static files, i18n ----------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ---------------------------------------------------------------------------------
# JSON lines by default, each with the request id of the exchange or task that wrote it
# (console.request_context), so one id ties an API call, its decision and its notifications.
# LOG_FORMAT=plain for a human-readable terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "console.request_context.RequestContextLogFilter"},
        "once_per_minute": {"()": "console.log_repeats.OncePerWindow", "seconds": 60},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # One line per HTTP call from the demo agent and SDK clients is noise, not news.
        "httpx": {"level": "WARNING"},
        # With Redis down these repeat every second or every decision: once a minute says it.
        "channels_redis.pubsub": {"filters": ["once_per_minute"]},
        "channels_redis.core": {"filters": ["once_per_minute"]},
        "approvals.realtime.reviewers": {"filters": ["once_per_minute"]},
    },
}

# --- Audit and insight -----------------------------------------------------------------------
# Bearer token for /metrics. Unset: the endpoint does not exist (404).
METRICS_TOKEN = env_str("METRICS_TOKEN")
# A reviewer whose median time on high-impact decision pages is under this many seconds, over at
# least RUBBER_STAMP_MIN_DECISIONS decisions, is flagged on the dashboard.
RUBBER_STAMP_SECONDS = env_int("RUBBER_STAMP_SECONDS", 10)
RUBBER_STAMP_MIN_DECISIONS = env_int("RUBBER_STAMP_MIN_DECISIONS", 5)
# Drift is flagged only when both weeks have at least this many decisions.
DRIFT_MIN_SAMPLES = env_int("DRIFT_MIN_SAMPLES", 10)

# The audit trail's HMAC key (approvals.audit, docs/audit.md). Never in the database: whoever can
# write the tables must not also be able to re-sign them. AUDIT_HMAC_KEY, else a keys file
# generated on first run (one key a line, the last one signs; earlier lines are retired keys
# kept to verify older records). Every server process and `manage.py` run must see the same
# keys: set AUDIT_HMAC_KEY (and AUDIT_HMAC_RETIRED_KEYS, comma-separated) or share the file.
AUDIT_HMAC_KEY_FILE = Path(env_str("AUDIT_HMAC_KEY_FILE") or VAR_DIR / "audit_hmac_keys")


def _audit_hmac_keys() -> list[str]:
    """Every audit key this console knows, oldest first; the last one signs new records."""
    if key := env_str("AUDIT_HMAC_KEY"):
        keys = [*env_list("AUDIT_HMAC_RETIRED_KEYS", []), key]
    else:
        import secrets

        text = file_made_once(AUDIT_HMAC_KEY_FILE, lambda: secrets.token_hex(32) + "\n")
        keys = [line.strip() for line in text.splitlines()]
        keys = [key for key in keys if key and not key.startswith("#")]
    if not keys or any(len(key) < 32 for key in keys):
        raise ImproperlyConfigured("audit HMAC keys must be at least 32 characters (docs/audit.md)")
    return keys


AUDIT_HMAC_KEYS = _audit_hmac_keys()

# Serve /static/ from the ASGI app itself (see console/asgi.py).
SERVE_STATIC = env_bool("SERVE_STATIC", True)

# --- Data lifecycle (approvals/retention.py, docs/operations.md) -----------------------------
# Decided requests (with their decisions, events, notifications and emptied runs) older than
# this many days are archived to ARCHIVE_DIR, then removed, once a day by beat. 0 keeps
# everything: removing data is the operator's decision, never a default.
RETENTION_DAYS = env_int("RETENTION_DAYS", 0)
ARCHIVE_DIR = Path(env_str("ARCHIVE_DIR", str(VAR_DIR / "archive")))
RETENTION_SWEEP_SECONDS = env_int("RETENTION_SWEEP_SECONDS", 24 * 60 * 60)
# `manage.py audit_archive` (approvals/audit/prune.py) refuses to archive and delete audit
# records younger than this: the recent trail is what incidents are investigated from.
AUDIT_ARCHIVE_MIN_AGE_DAYS = env_int("AUDIT_ARCHIVE_MIN_AGE_DAYS", 90)
# Beat archives audit records older than this many days to ARCHIVE_DIR and prunes them, every
# AUDIT_ARCHIVE_SWEEP_SECONDS, as `manage.py audit_archive` does (docs/audit.md). 0 leaves the
# trail whole: deleting it is the operator's decision, never a default.
AUDIT_ARCHIVE_AFTER_DAYS = env_int("AUDIT_ARCHIVE_AFTER_DAYS", 0)
AUDIT_ARCHIVE_SWEEP_SECONDS = env_int("AUDIT_ARCHIVE_SWEEP_SECONDS", 24 * 60 * 60)
# Beat prunes at most this many records a transaction (one archive file and checkpoint each):
# a first run behind a year of records goes in steps, not one transaction holding its locks
# and write-ahead log for as long as the whole delete takes. About 300 MB of rows.
AUDIT_ARCHIVE_CHUNK_RECORDS = env_int("AUDIT_ARCHIVE_CHUNK_RECORDS", 250_000)
if AUDIT_ARCHIVE_CHUNK_RECORDS < 1:
    raise ImproperlyConfigured(
        f"AUDIT_ARCHIVE_CHUNK_RECORDS={AUDIT_ARCHIVE_CHUNK_RECORDS}: at least 1 record a chunk"
    )
# Refused here, not each night in a worker's log: a prune that could never run.
if AUDIT_ARCHIVE_AFTER_DAYS and AUDIT_ARCHIVE_AFTER_DAYS < AUDIT_ARCHIVE_MIN_AGE_DAYS:
    raise ImproperlyConfigured(
        f"AUDIT_ARCHIVE_AFTER_DAYS={AUDIT_ARCHIVE_AFTER_DAYS} is below AUDIT_ARCHIVE_MIN_AGE_DAYS "
        f"({AUDIT_ARCHIVE_MIN_AGE_DAYS}): audit records that young are never archived. Set it to "
        f"at least {AUDIT_ARCHIVE_MIN_AGE_DAYS}, or 0 to leave the trail whole"
    )
# A request archive carries the audit records about its requests: pruned first, they are gone.
if AUDIT_ARCHIVE_AFTER_DAYS and AUDIT_ARCHIVE_AFTER_DAYS < RETENTION_DAYS:
    raise ImproperlyConfigured(
        f"AUDIT_ARCHIVE_AFTER_DAYS={AUDIT_ARCHIVE_AFTER_DAYS} is below RETENTION_DAYS "
        f"({RETENTION_DAYS}): the trail would be pruned before the requests it is about are "
        f"archived with it. Set it to at least {RETENTION_DAYS}"
    )
