"""``keep_alive``: how long a model stays listed in ``/api/ps`` after a request, parsed as Ollama does.

A number is seconds and a string is a Go duration ("5m", "1h30m", "0"); a negative value keeps
the model forever (:data:`FOREVER`); 0 unloads it at once; absent means the default, 5 minutes
(:data:`DEFAULT_KEEP_ALIVE_S`). Anything else is the client's mistake: a 400.
"""

from __future__ import annotations

import math
import re

from .errors import ClientRequestError

__all__ = ["DEFAULT_KEEP_ALIVE_S", "FOREVER", "parse_keep_alive"]

DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's OLLAMA_KEEP_ALIVE default
FOREVER = math.inf

# Go's time.ParseDuration units, as Ollama parses keep_alive strings.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def parse_keep_alive(value: object) -> float | None:
    """Seconds a model stays listed after a request: None = the default, 0 = unload, inf = forever.

    Ollama's rules: a number is seconds and a string is a Go duration ("5m", "1h30m", "0"); a
    negative value keeps the model forever; anything else is a 400. A string of plain digits
    ("300"), which Go's parser refuses, is taken as seconds too: clients that send it mean that.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ClientRequestError(f"keep_alive must be a number of seconds or a duration such as \"5m\", "
                                 f"got a JSON {_json_type(value)}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            seconds = float(text)
        elif _DURATION.match(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
            if text.startswith("-"):
                seconds = -seconds
        else:
            raise ClientRequestError(f"keep_alive: invalid duration {value!r} (use seconds or e.g. \"5m\", \"1h30m\")")
    else:
        seconds = float(value)
    if math.isnan(seconds):
        raise ClientRequestError("keep_alive must be a number")
    return FOREVER if seconds < 0 else seconds


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
