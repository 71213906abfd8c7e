"""gunicorn settings for the bridge (Heroku-style Procfile, or behind nginx).

Kept import-light on purpose: requests/urllib3/ssl must not be imported in the master before the
gevent worker monkey-patches (gunicorn#2796). Every top-level name here is read by gunicorn as a
setting, so helpers and modules carry a leading underscore.
"""

import os as _os
import shutil as _shutil
import tempfile as _tempfile

# Multi-worker metrics: prometheus_client picks its storage when first imported, so the directory
# must be in the environment before any worker imports the app.
_metrics_dir = _os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _metrics_dir:
    _metrics_dir = _os.path.join(_tempfile.gettempdir(), f"bridge-metrics-{_os.getpid()}")
    _os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

bind = f"0.0.0.0:{_os.environ.get('PORT') or _os.environ.get('PROXY_PORT') or '11434'}"
workers = int(_os.environ.get("WEB_CONCURRENCY") or _os.cpu_count() or 2)
worker_class = "gevent"
# Each open stream holds one greenlet for its whole life: this is the per-worker stream cap.
worker_connections = int(_os.environ.get("WORKER_CONNECTIONS") or 1000)
# For gevent workers this is a heartbeat, not a request limit: long streams are fine.
timeout = 30
# Heroku sends SIGKILL 30 s after SIGTERM: let in-flight streams finish within 25 s.
graceful_timeout = int(_os.environ.get("GRACEFUL_TIMEOUT") or 25)
# Longer than Heroku's router (90 s) and nginx's upstream keepalive, so idle pooled connections
# are closed by the other side first (no H13/H18 races).
keepalive = int(_os.environ.get("KEEPALIVE") or 95)
preload_app = False  # patching must happen before requests/ssl are imported (see module docstring)
max_requests = 0  # recycling cuts streams and leaves metric files behind
forwarded_allow_ips = _os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = _os.environ.get("ACCESS_LOG", "-") or None
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
loglevel = (_os.environ.get("LOG_LEVEL") or "info").lower()
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
