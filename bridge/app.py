"""The app factory: builds one worker's services once, wires hooks, routes and error handlers."""

from __future__ import annotations

import logging

from flask import Flask

from . import __version__
from .backend_pool import BackendPool
from .config import Settings
from .demo_backend import demo_transport
from .error_handlers import register_error_handlers
from .guards import install_guards
from .logs import configure_logging, set_instance
from .metrics import Metrics
from .metrics.instrument import install
from .metrics.push import start_pusher
from .modelmap import ModelMap
from .paths import UNCOUNTED_PREFIXES
from .readiness import cached_readiness
from .request_ids import install_request_ids
from .routes.anthropic import anthropic_blueprint
from .routes.common import Services, now_rfc3339
from .routes.dashboard import dashboard_blueprint
from .routes.monitoring import monitoring_blueprint
from .routes.ollama import ollama_blueprint
from .routes.openai import openai_blueprint
from .routes.responses_api import responses_blueprint

__all__ = ["create_app"]

log = logging.getLogger("bridge")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app. ``settings`` default to the environment (read here, once)."""
    settings = settings or Settings.from_env()
    # DEBUG only turns on debug logs: Flask's debugger is never exposed on a gateway.
    configure_logging("DEBUG" if settings.debug else settings.log_level, settings.log_format)
    set_instance(settings.instance_name)
    app = Flask("bridge")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes  # chunked uploads without a length too

    modelmap = ModelMap(dict(settings.model_mapping), settings.default_model)
    metrics = Metrics(window=settings.metrics_window, version=__version__, multiproc_dir=settings.metrics_dir,
                      model_labels=modelmap.label, enabled=settings.metrics_enabled,
                      backends=tuple(b.name for b in settings.backend_list()), keys=settings.key_names())
    # Every backend (one without BACKENDS_FILE): clients, merged catalogue, failover, breakers.
    # The demo backend, when no backend is configured, plugs in as the wire under the clients.
    demo = (lambda backend: demo_transport(settings)) if settings.demo_backend else None
    pool = BackendPool(settings, on_ids=modelmap.set_known_labels, report=metrics, transport_for=demo)
    metrics.before_scrape(pool.publish_states)
    services = Services(settings=settings, modelmap=modelmap, pool=pool, started_at=now_rfc3339())
    app.extensions["bridge"] = services
    app.extensions["bridge.metrics"] = metrics

    install_request_ids(app)  # first: every request has its id, rejected ones too
    install(app, metrics, excluded_prefixes=UNCOUNTED_PREFIXES)  # before the guards: rejections are counted
    install_guards(app, settings)  # inbound key, size limit, chunked bodies; CORS
    register_error_handlers(app)

    app.register_blueprint(ollama_blueprint(services))
    app.register_blueprint(openai_blueprint(services))
    app.register_blueprint(anthropic_blueprint(services))
    app.register_blueprint(responses_blueprint(services))
    app.register_blueprint(monitoring_blueprint(metrics, token=settings.metrics_token, ready=cached_readiness(pool),
                                            instance=settings.instance_name))
    app.register_blueprint(dashboard_blueprint(token=settings.metrics_token))

    if settings.demo_backend:
        log.warning("no backend configured (OPENAI_API_BASE_URL unset): serving the built-in DEMO backend "
                    "with models 'demo' and 'demo-embed'")
    # Push mode (PUSHGATEWAY_URL): one elected worker per instance pushes; None when unset.
    app.extensions["bridge.pusher"] = start_pusher(metrics, url=settings.pushgateway_url,
                                                   instance=settings.instance_name,
                                                   interval_s=settings.push_interval_s)
    log.info("bridge ready", extra={"version": __version__, "settings": settings.describe()})
    return app
