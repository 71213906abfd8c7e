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
worker_class = "gevent"
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
max_requests = 0  # recycling cuts streams and leaves metric files behind
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
    """Master: drop a dead worker's live gauges (counters stay so totals never go backwards).

    Never record metrics here: a signal-handler update can deadlock on the client's lock
    (client_python#322).
    """
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Worker, after patching and app load: check the patching really happened."""
    from gevent import monkey

    if not (monkey.is_module_patched("socket") and monkey.is_module_patched("ssl")):
        worker.log.warning("gevent did not patch socket/ssl: streams would block the worker")
