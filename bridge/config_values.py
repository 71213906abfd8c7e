"""Reading one setting from the environment mapping: typed, checked, every error naming its variable.

:class:`Env` reads plain values (strings, bounded numbers, booleans, choices, lists); the functions
below read the settings that need more (URLs, files, keys, the multiprocess metrics directory...).
Only :meth:`bridge.config.Settings.from_env` calls them, once, with the mapping it was given: nothing
else in the bridge reads the environment. Secrets and URL credentials never appear in a message.
"""

from __future__ import annotations

import builtins
import os
import re
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar
from urllib.parse import urlsplit

from .backends import NAME_PATTERN, Backend, BackendsFileError, parse_backends
from .modelmap import ModelMap

__all__ = [
    "ConfigError", "Env", "access_log", "backends_file", "check_http_url", "inbound_keys", "instance_name",
    "metrics_dir", "model_mapping", "normalise_base_url", "ollama_version", "read_text_file", "redact_url",
    "url_setting",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_N = TypeVar("_N", int, float)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


class Env:
    """Typed reads from an environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[builtins.str, builtins.str]) -> None:
        self._environ = environ

    def str(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def int(self, name: builtins.str, default: builtins.int, *, lo: builtins.int | None = None,
            hi: builtins.int | None = None) -> builtins.int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        return _bounded(name, value, lo, hi)

    def float(self, name: builtins.str, default: builtins.float, *,
              lo: builtins.float | None = None) -> builtins.float:
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

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self._environ.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: builtins.str, default: builtins.str, allowed: tuple[builtins.str, ...], *,
               upper: builtins.bool = False) -> builtins.str:
        raw = self.str(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    def list(self, name: builtins.str) -> tuple[builtins.str, ...]:
        raw = self.str(name) or ""
        return tuple(item.strip() for item in raw.split(",") if item.strip())


def _bounded(name: str, value: _N, lo: _N | None, hi: _N | None) -> _N:
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be at most {hi}, got {value}")
    return value


# -- URLs ---------------------------------------------------------------------------------------


def check_http_url(url: str, name: str) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port, else ConfigError naming ``name``.

    Caught here, a typo stops the start; caught later, it is a "backend unreachable" on every call.
    Messages show the URL without its user:password part (PUSHGATEWAY_URL may carry one).
    """
    shown = redact_url(url)
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


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` replaced by ``***@`` (for logs and messages)."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def normalise_base_url(url: str) -> str:
    """OPENAI_API_BASE_URL checked, without trailing slashes, ending in ``/v1`` (appended when missing)."""
    url = check_http_url(url.strip().rstrip("/"), "OPENAI_API_BASE_URL")
    return url if url.endswith("/v1") else url + "/v1"


def url_setting(env: Env, name: str) -> str | None:
    """An optional http(s) URL setting, checked, without trailing slashes."""
    raw = env.str(name)
    return None if raw is None else check_http_url(raw.rstrip("/"), name)


# -- files --------------------------------------------------------------------------------------


def read_text_file(path: str, name: str) -> str:
    """The UTF-8 text of the file a setting names; ConfigError naming the setting otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: {path!r} is not UTF-8 text (byte {exc.start})") from None


def backends_file(env: Env) -> tuple[Backend, ...]:
    """BACKENDS_FILE: the [[backend]] tables (backends.py), each key read from its api_key_env."""
    path = env.str("BACKENDS_FILE")
    if path is None:
        return ()
    text = read_text_file(path, "BACKENDS_FILE")
    try:
        backends = parse_backends(text, check_url=check_http_url)
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


def model_mapping(env: Env) -> dict[str, str | dict]:
    """MODEL_MAPPING_FILE's entries, then MODEL_MAPPING's (inline JSON) over them (see ModelMap.from_json)."""
    inline = env.str("MODEL_MAPPING")
    path = env.str("MODEL_MAPPING_FILE")
    mapping: dict[str, str | dict] = {}
    if path:
        text = read_text_file(path, "MODEL_MAPPING_FILE")
        mapping.update(_parse_mapping(text, "MODEL_MAPPING_FILE"))
    if inline:
        mapping.update(_parse_mapping(inline, "MODEL_MAPPING"))
    return mapping


def _parse_mapping(text: str, name: str) -> dict[str, str | dict]:
    try:
        return ModelMap.from_json(text).entries
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def metrics_dir(env: Env) -> str | None:
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


def access_log(env: Env) -> str | None:
    """ACCESS_LOG: gunicorn's own access log: a path or "-" for stdout; unset or empty: off.

    Off by default because the bridge already writes one JSON access line per request (with the
    request id, duration, status, model, outcome, TTFT and tokens): a second line per request
    costs about 4 % of a worker's CPU and says less.
    """
    return env.str("ACCESS_LOG")


# -- identities ---------------------------------------------------------------------------------


def inbound_keys(env: Env, *, default_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """BRIDGE_API_KEYS: comma-separated keys, each bare (named ``default_name``) or ``name:key``;
    -> (keys, usage names).

    Names are metrics labels, so they are checked like backend names; the key values are never
    shown, not even in the error messages.
    """
    keys: list[str] = []
    names: list[str] = []
    for position, item in enumerate(env.list("BRIDGE_API_KEYS"), 1):
        name, sep, key = item.partition(":")
        if not sep:
            name, key = default_name, item
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


def instance_name(env: Env) -> str:
    """INSTANCE_NAME, else Heroku's DYNO, else the host name: the ``instance`` of a fleet."""
    name = env.str("INSTANCE_NAME") or env.str("DYNO") or socket.gethostname() or "localhost"
    if len(name) > 128 or not name.isprintable():
        raise ConfigError(f"INSTANCE_NAME must be at most 128 printable characters, got {name[:40]!r}...")
    return name


def ollama_version(text: str) -> str:
    """OLLAMA_VERSION (what /api/version answers): a dotted number such as 0.12.6."""
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"OLLAMA_VERSION must be a dotted number such as 0.12.6, got {text!r}")
    return text
