"""gunicorn settings for the bridge (Heroku-style Procfile, or behind nginx).

Kept import-light on purpose: requests/urllib3/ssl must not be imported in the master before the
gevent worker monkey-patches (gunicorn#2796); ``bridge.config`` imports only the standard library.
Every top-level name here is read by gunicorn as a setting, so helpers carry a leading underscore.
Values come from ``bridge.config.Settings`` (the one place the environment is read), so a bad
WEB_CONCURRENCY stops the start with a message naming it, as every other setting does.
"""

import os as _os
import shutil as _shutil
import sys as _sys
import tempfile as _tempfile

from bridge import worker as _bridge_worker
from bridge.config import ConfigError as _ConfigError
from bridge.config import Settings as _Settings

# Multi-worker metrics: prometheus_client picks its storage when first imported, so the directory
# must be in the environment before any worker imports the app.
_metrics_dir = _os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _metrics_dir:
    _metrics_dir = _os.path.join(_tempfile.gettempdir(), f"bridge-metrics-{_os.getpid()}")
    _os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

try:
    _settings = _Settings.from_env()
except _ConfigError as _exc:
    _sys.exit(f"bridge: configuration error: {_exc}")

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
# gevent's worker plus deadlines on each request's line and headers (CLIENT_HEADER_TIMEOUT) and
# on each wait for its body (CLIENT_BODY_TIMEOUT).
_bridge_worker.configure(header_timeout_s=_settings.client_header_timeout_s,
                         body_timeout_s=_settings.client_body_timeout_s)
worker_class = "bridge.worker.BridgeWorker"
# Each open stream holds one greenlet for its whole life: this is the per-worker stream cap.
worker_connections = _settings.worker_connections
# For gevent workers this is a heartbeat, not a request limit: long streams are fine.
timeout = 30
# Heroku sends SIGKILL 30 s after SIGTERM: let in-flight streams finish within 25 s.
graceful_timeout = _settings.graceful_timeout_s
# Longer than Heroku's router (90 s) and nginx's upstream keepalive, so idle pooled connections
# are closed by the other side first (no H13/H18 races).
keepalive = _settings.keepalive_s
preload_app = False  # patching must happen before requests/ssl are imported (see module docstring)
# Off by default. When set, a recycled worker finishes its streams within graceful_timeout and
# its metric files are folded into the archive (child_exit), so totals stay exact.
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
forwarded_allow_ips = _settings.forwarded_allow_ips
accesslog = _settings.access_log  # off by default: the bridge writes its own JSON access line
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
loglevel = _settings.log_level.lower()
control_socket_disable = True  # gunicorn 27's control socket races between instances on one host
wsgi_app = "bridge.wsgi:app"


def on_starting(server):
    """Master, before the first fork: start from an empty metrics directory."""
    _shutil.rmtree(_metrics_dir, ignore_errors=True)
    _os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    """Master (main loop, not a signal handler, in gunicorn 27): drop a dead worker's live gauges
    and fold its counters and histograms into the archive files, so totals never go backwards and
    the directory does not grow with every worker that ever lived.

    Never record metrics here: the master must not own metric values (client_python#322).
    """
    from prometheus_client import multiprocess

    from bridge.metrics.archive import fold_dead_worker

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
    try:
        fold_dead_worker(_metrics_dir, worker.pid)
    except Exception as exc:  # nothing here may take the master down; the files just stay
        server.log.warning("metrics: could not fold worker %s's files: %r", worker.pid, exc)


def post_worker_init(worker):
    """Worker, after patching and app load: check the patching really happened."""
    from gevent import monkey

    if not (monkey.is_module_patched("socket") and monkey.is_module_patched("ssl")):
        worker.log.warning("gevent did not patch socket/ssl: streams would block the worker")
