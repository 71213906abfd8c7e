"""Settings: read once from an environment mapping, typed, validated, frozen.

Nothing else in the bridge reads the environment. A bad value stops the start with a message that
names the variable. Names follow the best-known existing proxy so its users can switch unchanged.
This module says which settings there are (:class:`Settings`, its defaults, ``from_env`` and the
start-up ``describe``); how each value is read and checked is config_values.py's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import config_values as values
from .backends import Backend
from .config_values import ConfigError, Env, redact_url
from .config_values import check_http_url as _check_http_url

# ConfigError (and _check_http_url, as check_http_url) live in config_values.py, re-exported here.
__all__ = ["ConfigError", "Settings", "DEMO_BACKEND_URL", "DEFAULT_BACKEND", "DEFAULT_KEY_NAME", "_check_http_url"]

# The built-in demo backend answers requests sent to this host in-process (see demo_backend.py).
DEMO_BACKEND_URL = "http://demo.bridge.invalid/v1"

_THINK_CONTROLS = ("reasoning_effort", "chat_template_kwargs", "both", "off")
#: The name of the one backend made from OPENAI_API_BASE_URL & co when there is no BACKENDS_FILE.
DEFAULT_BACKEND = "default"
#: The usage name of inbound keys given without ``name:``.
DEFAULT_KEY_NAME = "default"


@dataclass(frozen=True)
class Settings:
    backend_url: str = DEMO_BACKEND_URL
    demo_backend: bool = True
    api_key: str | None = field(default=None, repr=False)
    port: int = 11434
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    stream_idle_timeout_s: float = 120.0
    max_retries: int = 2
    retry_backoff_s: float = 0.25
    # "ollama-name" -> "backend-name", or -> {"model": "backend-name", ...facts} (see ModelMap.from_json)
    model_mapping: Mapping[str, str | dict] = field(default_factory=dict)
    default_model: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    debug: bool = False
    verify_ssl: bool = True
    max_request_bytes: int = 32 * 1024 * 1024
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    metrics_window: int = 2000
    metrics_dir: str | None = None
    metrics_enabled: bool = True
    think_control: str = "reasoning_effort"
    ollama_version: str = "0.16.1"
    cors_origins: tuple[str, ...] = ()
    pool_maxsize: int = 1000
    #: The HTTP client under the backend calls: "wire" (the bridge's own HTTP/1.1 client for
    #: http:// backends, https:// still through requests) or "requests" (every backend).
    http_client: str = "wire"
    web_concurrency: int = field(default_factory=lambda: os.cpu_count() or 2)
    worker_connections: int = 1000
    graceful_timeout_s: int = 25
    keepalive_s: int = 95
    forwarded_allow_ips: str = "127.0.0.1,::1"
    access_log: str | None = None
    models_cache_s: float = 30.0
    demo_token_delay_s: float = 0.02
    first_byte_timeout_s: float = 0.0
    client_header_timeout_s: float = 10.0
    client_body_timeout_s: float = 60.0
    max_requests: int = 0
    max_requests_jitter: int = 0
    instance_name: str = "localhost"
    pushgateway_url: str | None = None
    push_interval_s: float = 15.0
    # Many backends (BACKENDS_FILE); empty: the single backend above, see backend_list().
    backends: tuple[Backend, ...] = ()
    backend_failure_threshold: int = 3
    backend_cooldown_s: float = 30.0
    # Usage name of each of api_keys (same order); empty: every key is "default".
    api_key_names: tuple[str, ...] = ()

    def backend_list(self) -> tuple[Backend, ...]:
        """The backends to route to: BACKENDS_FILE's, else one ("default") from the single-backend settings."""
        if self.backends:
            return self.backends
        return (Backend(name=DEFAULT_BACKEND, base_url=self.backend_url, api_key=self.api_key),)

    def key_names(self) -> tuple[str, ...]:
        """The usage name of each inbound key, in the order of ``api_keys``."""
        if len(self.api_key_names) == len(self.api_keys):
            return self.api_key_names
        return (DEFAULT_KEY_NAME,) * len(self.api_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); raise ConfigError on bad values."""
        env = Env(os.environ if environ is None else environ)
        base = env.str("OPENAI_API_BASE_URL") or env.str("OPENAI_BASE_URL")
        backends = values.backends_file(env)
        if backends and base:
            raise ConfigError("BACKENDS_FILE and OPENAI_API_BASE_URL (or OPENAI_BASE_URL) are both set: "
                              "describe every backend in the file and unset the single-backend URL")
        demo = not base and not backends
        keys, key_names = values.inbound_keys(env, default_name=DEFAULT_KEY_NAME)
        url = backends[0].base_url if backends else values.normalise_base_url(base) if base else DEMO_BACKEND_URL
        return cls(
            backend_url=url,
            demo_backend=demo,
            api_key=None if backends else env.str("OPENAI_API_KEY"),
            backends=backends,
            backend_failure_threshold=env.int("BACKEND_FAILURE_THRESHOLD", 3, lo=1, hi=1000),
            backend_cooldown_s=env.float("BACKEND_COOLDOWN", 30.0, lo=0.1),
            api_keys=keys,
            api_key_names=key_names,
            port=env.int("PORT", env.int("PROXY_PORT", 11434, lo=1, hi=65535), lo=1, hi=65535),
            request_timeout_s=env.float("REQUEST_TIMEOUT", 600.0, lo=0.1),
            connect_timeout_s=env.float("CONNECT_TIMEOUT", 5.0, lo=0.1),
            stream_idle_timeout_s=env.float("STREAM_IDLE_TIMEOUT", 120.0, lo=0.1),
            max_retries=env.int("MAX_RETRIES", 2, lo=0, hi=10),
            retry_backoff_s=env.float("RETRY_BACKOFF", 0.25, lo=0.0),
            model_mapping=values.model_mapping(env),
            default_model=env.str("DEFAULT_MODEL"),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True),
            log_format=env.choice("LOG_FORMAT", "json", ("json", "text")),
            debug=env.bool("DEBUG", False),
            verify_ssl=not env.bool("DISABLE_SSL_VERIFICATION", False),
            max_request_bytes=env.int("MAX_REQUEST_BYTES", 32 * 1024 * 1024, lo=1024),
            metrics_token=env.str("METRICS_TOKEN"),
            metrics_window=env.int("METRICS_WINDOW", 2000, lo=10, hi=50_000),
            metrics_dir=values.metrics_dir(env),
            metrics_enabled=env.bool("METRICS_ENABLED", True),
            think_control=env.choice("THINK_CONTROL", "reasoning_effort", _THINK_CONTROLS),
            ollama_version=values.ollama_version(env.str("OLLAMA_VERSION") or "0.16.1"),
            cors_origins=env.list("CORS_ORIGINS"),
            pool_maxsize=env.int("UPSTREAM_POOL_SIZE", 1000, lo=1, hi=100_000),
            http_client=env.choice("BACKEND_HTTP_CLIENT", "wire", ("wire", "requests")),
            web_concurrency=env.int("WEB_CONCURRENCY", os.cpu_count() or 2, lo=1, hi=256),
            worker_connections=env.int("WORKER_CONNECTIONS", 1000, lo=1, hi=100_000),
            graceful_timeout_s=env.int("GRACEFUL_TIMEOUT", 25, lo=0, hi=3600),
            keepalive_s=env.int("KEEPALIVE", 95, lo=0, hi=3600),
            forwarded_allow_ips=env.str("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1",
            access_log=values.access_log(env),
            models_cache_s=env.float("MODELS_CACHE_TTL", 30.0, lo=0.0),
            demo_token_delay_s=env.float("DEMO_TOKEN_DELAY", 0.02, lo=0.0),
            # Heroku's router drops a request with no first byte in 30 s (H12): on a dyno (DYNO is
            # set) non-streamed answers send headers and keep-alive spaces after 20 s by default.
            first_byte_timeout_s=env.float("FIRST_BYTE_TIMEOUT", 20.0 if env.str("DYNO") else 0.0, lo=0.0),
            # A connection that has not sent its request line and headers by then is dropped
            # (nginx's name), so slow or idle clients cannot hold a worker's connection slots.
            client_header_timeout_s=env.float("CLIENT_HEADER_TIMEOUT", 10.0, lo=0.1),
            # Silence allowed between two reads of a request body (nginx's name and default): then
            # 408 and the connection closed, so a client that stops mid-body frees its slot.
            client_body_timeout_s=env.float("CLIENT_BODY_TIMEOUT", 60.0, lo=0.1),
            max_requests=env.int("MAX_REQUESTS", 0, lo=0),
            max_requests_jitter=env.int("MAX_REQUESTS_JITTER", 0, lo=0),
            instance_name=values.instance_name(env),
            pushgateway_url=values.url_setting(env, "PUSHGATEWAY_URL"),
            push_interval_s=env.float("PUSH_INTERVAL", 15.0, lo=1.0),
        )

    def describe(self) -> dict:
        """Effective settings for the start-up log, secrets redacted."""
        return {
            "backend": "built-in demo backend" if self.demo_backend else redact_url(self.backend_url),
            "backends": [{"name": b.name, "url": redact_url(b.base_url), "priority": b.priority, "weight": b.weight,
                          "models": len(b.models) if b.models else "discovered",
                          "api_key": "set" if b.api_key else "unset"} for b in self.backends],
            "circuit": {"failure_threshold": self.backend_failure_threshold, "cooldown_s": self.backend_cooldown_s},
            "api_key": "set" if self.api_key else "unset",
            "inbound_keys": len(self.api_keys),
            "inbound_key_names": sorted(set(self.key_names())),  # names only, never the keys
            "metrics_token": "set" if self.metrics_token else "unset",
            "request_timeout_s": self.request_timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
            "stream_idle_timeout_s": self.stream_idle_timeout_s,
            "max_retries": self.max_retries,
            "models_mapped": len(self.model_mapping),
            "default_model": self.default_model,
            "metrics_window": self.metrics_window,
            "workers": self.web_concurrency,
            "worker_connections": self.worker_connections,
            "multiprocess_metrics": bool(self.metrics_dir),
            "instance": self.instance_name,
            "pushgateway": "set" if self.pushgateway_url else "unset",
        }

