"""The list of backends: a ``BACKENDS_FILE`` (TOML) parsed and checked, pure.

One ``[[backend]]`` table per backend::

    [[backend]]
    name = "gpu-a"                      # required; [A-Za-z0-9_.-]{1,64}, unique (a metrics label)
    base_url = "http://10.0.0.5:8000"   # required; http(s), "/v1" appended when missing
    api_key_env = "GPU_A_KEY"           # optional: the environment variable holding its key
    models = ["llama3", "qwen3:8b"]     # optional: else discovered from its /v1/models
    priority = 0                        # optional: lower is tried first
    weight = 1                          # optional: > 0, share of traffic inside a priority group
    request_timeout = 120               # optional per-backend REQUEST_TIMEOUT, CONNECT_TIMEOUT,
    connect_timeout = 2                 #   MAX_RETRIES, THINK_CONTROL
    max_retries = 1
    think_control = "chat_template_kwargs"

Keys never live in the file: ``api_key_env`` names a variable, which the settings (``config.py``,
the only reader of the environment, through ``config_values.py``) resolve. Every error is a
:class:`BackendsFileError` naming the backend and the key; the settings prefix it with ``BACKENDS_FILE``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backend", "BackendsFileError", "NAME_PATTERN", "THINK_CONTROLS", "parse_backends"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
THINK_CONTROLS = ("reasoning_effort", "chat_template_kwargs", "both", "off")
_MAX_BACKENDS = 64
_MAX_MODELS = 1000
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_KEYS = frozenset({"name", "base_url", "api_key_env", "models", "priority", "weight", "request_timeout",
                   "connect_timeout", "max_retries", "think_control"})


class BackendsFileError(ValueError):
    """The backends file is not valid; the message names the backend and the key."""


@dataclass(frozen=True)
class Backend:
    """One OpenAI-compatible backend. ``None`` per-backend settings fall back to the global ones."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    models: tuple[str, ...] | None = None  # None: discovered from its /v1/models
    priority: int = 0
    weight: float = 1.0
    request_timeout_s: float | None = None
    connect_timeout_s: float | None = None
    max_retries: int | None = None
    think_control: str | None = None


def parse_backends(text: str, *, check_url: Callable[[str, str], str]) -> tuple[Backend, ...]:
    """The backends described by the TOML ``text``.

    ``check_url(url, what)`` validates a base URL (config's rule) and raises with ``what`` in its
    message; its error is re-raised as a :class:`BackendsFileError`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BackendsFileError(f"not valid TOML: {exc}") from None
    unknown = set(data) - {"backend"}
    if unknown:
        raise BackendsFileError(f"unknown top-level key(s) {', '.join(sorted(unknown))}; "
                                "expected [[backend]] tables only")
    tables = data.get("backend")
    if not isinstance(tables, list) or not tables:
        raise BackendsFileError("no [[backend]] table")
    if len(tables) > _MAX_BACKENDS:
        raise BackendsFileError(f"{len(tables)} backends; at most {_MAX_BACKENDS}")
    backends: list[Backend] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, 1):
        backend = _backend(table, index, check_url)
        if backend.name in seen:
            raise BackendsFileError(f"backend {backend.name!r}: name is used twice (names must be unique)")
        seen.add(backend.name)
        backends.append(backend)
    return tuple(backends)


def _backend(table: object, index: int, check_url: Callable[[str, str], str]) -> Backend:
    if not isinstance(table, dict):
        raise BackendsFileError(f"backend #{index}: must be a [[backend]] table")
    name = table.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BackendsFileError(f"backend #{index}: name is required and must match [A-Za-z0-9_.-]{{1,64}}, "
                                f"got {name!r}")
    where = f"backend {name!r}"
    unknown = set(table) - _KEYS
    if unknown:
        raise BackendsFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    base_url = table.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        raise BackendsFileError(f"{where}: base_url is required (a string)")
    try:
        url = check_url(base_url.strip().rstrip("/"), f"{where}: base_url")
    except ValueError as exc:
        raise BackendsFileError(str(exc)) from None
    key_env = table.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env)):
        raise BackendsFileError(f"{where}: api_key_env must be the name of an environment variable, "
                                f"got {key_env!r}")
    return Backend(
        name=name,
        base_url=url if url.endswith("/v1") else url + "/v1",
        api_key_env=key_env,
        models=_models(table, where),
        priority=_int(table, "priority", where, 0, lo=-1000, hi=1000),
        weight=_number(table, "weight", where, 1.0, lo=0.0, exclusive=True, hi=1000.0),
        request_timeout_s=_number(table, "request_timeout", where, None, lo=0.1),
        connect_timeout_s=_number(table, "connect_timeout", where, None, lo=0.1),
        max_retries=_int(table, "max_retries", where, None, lo=0, hi=10),
        think_control=_think_control(table, where),
    )


def _models(table: dict, where: str) -> tuple[str, ...] | None:
    models = table.get("models")
    if models is None:
        return None
    if (not isinstance(models, list) or not models or len(models) > _MAX_MODELS
            or not all(isinstance(m, str) and m.strip() and len(m) <= 512 for m in models)):
        raise BackendsFileError(f"{where}: models must be a non-empty list of model names (at most "
                                f"{_MAX_MODELS}); leave it out to discover them from /v1/models")
    return tuple(dict.fromkeys(m.strip() for m in models))


def _int(table: dict, key: str, where: str, default, *, lo: int, hi: int):
    value = table.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BackendsFileError(f"{where}: {key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise BackendsFileError(f"{where}: {key} must be between {lo} and {hi}, got {value}")
    return value


def _number(table: dict, key: str, where: str, default, *, lo: float, hi: float | None = None,
            exclusive: bool = False):
    value = table.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BackendsFileError(f"{where}: {key} must be a number, got {value!r}")
    if (value <= lo if exclusive else value < lo) or value == float("inf") or (hi is not None and value > hi):
        bound = f"greater than {lo:g}" if exclusive else f"at least {lo:g}"
        raise BackendsFileError(f"{where}: {key} must be {bound}" + (f" and at most {hi:g}" if hi else "")
                                + f", got {value}")
    return float(value)


def _think_control(table: dict, where: str) -> str | None:
    value = table.get("think_control")
    if value is None:
        return None
    if value not in THINK_CONTROLS:
        raise BackendsFileError(f"{where}: think_control must be one of {', '.join(THINK_CONTROLS)}, "
                                f"got {value!r}")
    return value
