"""Settings: read once from an environment mapping, typed, validated, frozen.

Nothing else in the bridge reads the environment. A bad value stops the start with a message that
names the variable. Names follow the best-known existing proxy so its users can switch unchanged.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .backends import NAME_PATTERN, Backend, BackendsFileError, parse_backends
from .modelmap import ModelMap

__all__ = ["ConfigError", "Settings", "DEMO_BACKEND_URL", "DEFAULT_BACKEND", "DEFAULT_KEY_NAME"]

# The built-in demo backend answers requests sent to this host in-process (see demo_backend.py).
DEMO_BACKEND_URL = "http://demo.bridge.invalid/v1"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_THINK_CONTROLS = ("reasoning_effort", "chat_template_kwargs", "both", "off")
#: The name of the one backend made from OPENAI_API_BASE_URL & co when there is no BACKENDS_FILE.
DEFAULT_BACKEND = "default"
#: The usage name of inbound keys given without ``name:``.
DEFAULT_KEY_NAME = "default"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


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
        env = _Env(os.environ if environ is None else environ)
        base = env.str("OPENAI_API_BASE_URL") or env.str("OPENAI_BASE_URL")
        backends = _backends_file(env)
        if backends and base:
            raise ConfigError("BACKENDS_FILE and OPENAI_API_BASE_URL (or OPENAI_BASE_URL) are both set: "
                              "describe every backend in the file and unset the single-backend URL")
        demo = not base and not backends
        keys, key_names = _inbound_keys(env)
        return cls(
            backend_url=backends[0].base_url if backends else DEMO_BACKEND_URL if demo else _normalise_base_url(base),
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
            model_mapping=_model_mapping(env),
            default_model=env.str("DEFAULT_MODEL"),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True),
            log_format=env.choice("LOG_FORMAT", "json", ("json", "text")),
            debug=env.bool("DEBUG", False),
            verify_ssl=not env.bool("DISABLE_SSL_VERIFICATION", False),
            max_request_bytes=env.int("MAX_REQUEST_BYTES", 32 * 1024 * 1024, lo=1024),
            metrics_token=env.str("METRICS_TOKEN"),
            metrics_window=env.int("METRICS_WINDOW", 2000, lo=10, hi=50_000),
            metrics_dir=_metrics_dir(env),
            metrics_enabled=env.bool("METRICS_ENABLED", True),
            think_control=env.choice("THINK_CONTROL", "reasoning_effort", _THINK_CONTROLS),
            ollama_version=_version(env.str("OLLAMA_VERSION") or "0.16.1"),
            cors_origins=env.list("CORS_ORIGINS"),
            pool_maxsize=env.int("UPSTREAM_POOL_SIZE", 1000, lo=1, hi=100_000),
            web_concurrency=env.int("WEB_CONCURRENCY", os.cpu_count() or 2, lo=1, hi=256),
            worker_connections=env.int("WORKER_CONNECTIONS", 1000, lo=1, hi=100_000),
            graceful_timeout_s=env.int("GRACEFUL_TIMEOUT", 25, lo=0, hi=3600),
            keepalive_s=env.int("KEEPALIVE", 95, lo=0, hi=3600),
            forwarded_allow_ips=env.str("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1",
            access_log=_access_log(environ if environ is not None else os.environ),
            models_cache_s=env.float("MODELS_CACHE_TTL", 30.0, lo=0.0),
            demo_token_delay_s=env.float("DEMO_TOKEN_DELAY", 0.02, lo=0.0),
            # Heroku's router drops a request with no first byte in 30 s (H12): on a dyno (DYNO is
            # set) non-streamed answers send headers and keep-alive spaces after 20 s by default.
            first_byte_timeout_s=env.float("FIRST_BYTE_TIMEOUT", 20.0 if env.str("DYNO") else 0.0, lo=0.0),
            # A connection that has not sent its request line and headers by then is dropped
            # (nginx's name), so slow or idle clients cannot hold a worker's connection slots.
            client_header_timeout_s=env.float("CLIENT_HEADER_TIMEOUT", 10.0, lo=0.1),
            max_requests=env.int("MAX_REQUESTS", 0, lo=0),
            max_requests_jitter=env.int("MAX_REQUESTS_JITTER", 0, lo=0),
            instance_name=_instance_name(env),
            pushgateway_url=_url(env, "PUSHGATEWAY_URL"),
            push_interval_s=env.float("PUSH_INTERVAL", 15.0, lo=1.0),
        )

    def describe(self) -> dict:
        """Effective settings for the start-up log, secrets redacted."""
        return {
            "backend": "built-in demo backend" if self.demo_backend else _redact_url(self.backend_url),
            "backends": [{"name": b.name, "url": _redact_url(b.base_url), "priority": b.priority, "weight": b.weight,
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


def _backends_file(env: _Env) -> tuple[Backend, ...]:
    """BACKENDS_FILE: the [[backend]] tables (backends.py), each key read from its api_key_env."""
    path = env.str("BACKENDS_FILE")
    if path is None:
        return ()
    text = _read_text_file(path, "BACKENDS_FILE")
    try:
        backends = parse_backends(text, check_url=_check_http_url)
    except BackendsFileError as exc:
        raise ConfigError(f"BACKENDS_FILE {path}: {exc}") from None
    resolved = []
    for backend in backends:
        key = None
        if backend.api_key_env:
            key = env.str(backend.api_key_env)
            if key is None:
                raise ConfigError(f"BACKENDS_FILE {path}: backend {backend.name!r}: api_key_env names "
                                  f"{backend.api_key_env}, which is not set")
        resolved.append(replace(backend, api_key=key))
    return tuple(resolved)


def _read_text_file(path: str, name: str) -> str:
    """The UTF-8 text of the file a setting names; ConfigError naming the setting otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: {path!r} is not UTF-8 text (byte {exc.start})") from None


def _inbound_keys(env: _Env) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """BRIDGE_API_KEYS: comma-separated keys, each bare or ``name:key``; -> (keys, usage names).

    Names are metrics labels, so they are checked like backend names; the key values are never
    shown, not even in the error messages.
    """
    keys: list[str] = []
    names: list[str] = []
    for position, item in enumerate(env.list("BRIDGE_API_KEYS"), 1):
        name, sep, key = item.partition(":")
        if not sep:
            name, key = DEFAULT_KEY_NAME, item
        name, key = name.strip(), key.strip()
        if not NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"BRIDGE_API_KEYS: entry #{position} has a name that does not match "
                              "[A-Za-z0-9_.-]{1,64} (write name:key, or the key alone)")
        if not key:
            raise ConfigError(f"BRIDGE_API_KEYS: entry #{position} ({name}) has an empty key")
        if key in keys:
            raise ConfigError(f"BRIDGE_API_KEYS: entry #{position} ({name}) repeats a key given before")
        keys.append(key)
        names.append(name)
    return tuple(keys), tuple(names)


def _access_log(environ: Mapping[str, str]) -> str | None:
    """ACCESS_LOG: gunicorn's own access log: a path or "-" for stdout; unset or empty: off.

    Off by default because the bridge already writes one JSON access line per request (with the
    request id, duration, status, model, outcome, TTFT and tokens): a second line per request
    costs about 4 % of a worker's CPU and says less.
    """
    value = environ.get("ACCESS_LOG", "").strip()
    return value or None


def _normalise_base_url(url: str) -> str:
    url = _check_http_url(url.strip().rstrip("/"), "OPENAI_API_BASE_URL")
    return url if url.endswith("/v1") else url + "/v1"


def _check_http_url(url: str, name: str) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port, else ConfigError naming ``name``.

    Caught here, a typo stops the start; caught later, it is a "backend unreachable" on every call.
    Messages show the URL without its user:password part (PUSHGATEWAY_URL may carry one).
    """
    shown = _redact_url(url)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must start with http:// or https://, got {shown!r}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad or out-of-range port
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({str(exc).replace(url, shown)}): {shown!r}") from None
    if not parts.hostname:
        raise ConfigError(f"{name} has no host: {shown!r}")
    if port == 0:
        raise ConfigError(f"{name} has port 0: {shown!r}")
    return url


def _redact_url(url: str) -> str:
    """The URL with any ``user:password@`` replaced by ``***@`` (for logs and messages)."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def _url(env: _Env, name: str) -> str | None:
    raw = env.str(name)
    return None if raw is None else _check_http_url(raw.rstrip("/"), name)


def _metrics_dir(env: _Env) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, checked writable now (or creatable), not at the first worker's fork."""
    path = env.str("PROMETHEUS_MULTIPROC_DIR")
    if path is None:
        return None
    probe_dir = path
    while not os.path.isdir(probe_dir):  # the nearest existing ancestor must let us create it
        if os.path.exists(probe_dir):
            raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR {path!r} is not a directory")
        parent = os.path.dirname(os.path.abspath(probe_dir))
        if parent == probe_dir:
            break
        probe_dir = parent
    try:
        with tempfile.TemporaryFile(dir=probe_dir):
            pass
    except OSError as exc:
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR {path!r} is not writable: {exc.strerror}") from None
    return path


def _instance_name(env: _Env) -> str:
    """INSTANCE_NAME, else Heroku's DYNO, else the host name: the ``instance`` of a fleet."""
    name = env.str("INSTANCE_NAME") or env.str("DYNO") or socket.gethostname() or "localhost"
    if len(name) > 128 or not name.isprintable():
        raise ConfigError(f"INSTANCE_NAME must be at most 128 printable characters, got {name[:40]!r}...")
    return name


def _version(text: str) -> str:
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"OLLAMA_VERSION must be a dotted number such as 0.12.6, got {text!r}")
    return text


def _model_mapping(env: _Env) -> dict[str, str | dict]:
    inline = env.str("MODEL_MAPPING")
    path = env.str("MODEL_MAPPING_FILE")
    mapping: dict[str, str | dict] = {}
    if path:
        text = _read_text_file(path, "MODEL_MAPPING_FILE")
        mapping.update(_parse_mapping(text, "MODEL_MAPPING_FILE"))
    if inline:
        mapping.update(_parse_mapping(inline, "MODEL_MAPPING"))
    return mapping


def _parse_mapping(text: str, name: str) -> dict[str, str | dict]:
    try:
        return ModelMap.from_json(text).entries
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


class _Env:
    """Typed reads from an environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def str(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def int(self, name: str, default: int, *, lo: int | None = None, hi: int | None = None) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        return _bounded(name, value, lo, hi)

    def float(self, name: str, default: float, *, lo: float | None = None) -> float:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        return _bounded(name, value, lo, None)

    def bool(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        raw = self.str(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    def list(self, name: str) -> tuple[str, ...]:
        raw = self.str(name) or ""
        return tuple(item.strip() for item in raw.split(",") if item.strip())


def _bounded(name: str, value, lo, hi):
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be at most {hi}, got {value}")
    return value
