"""Ollama ``options`` -> OpenAI sampling fields: only portable options the client actually set."""

from __future__ import annotations

import math

from bridge.errors import ClientRequestError
from bridge.translate.json_types import JSON

__all__ = ["openai_sampling"]

# Ollama option -> OpenAI field for plain numbers forwarded unchanged.
_FLOAT_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def openai_sampling(options: JSON | None) -> JSON:
    """Map Ollama options to OpenAI fields; drop the rest silently; 400 on wrong types."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ClientRequestError("options must be an object")
    out: JSON = {}
    for name, field in _FLOAT_FIELDS.items():
        value = options.get(name)
        if value is not None:
            out[field] = _number(name, value)
    num_predict = options.get("num_predict")
    if num_predict is not None:
        # -1 (unlimited) and -2 (fill context) have no OpenAI spelling: leave the backend default.
        limit = _integer("num_predict", num_predict)
        if limit > 0:
            out["max_tokens"] = limit
    seed = options.get("seed")
    if seed is not None:
        out["seed"] = _integer("seed", seed)
    stop = _stop(options.get("stop"))
    if stop:
        out["stop"] = stop
    return out


def _number(name: str, value: object) -> int | float:
    """A finite JSON number (bool excluded: Python treats it as an int, clients do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClientRequestError(f"options.{name} must be a number")
    if not math.isfinite(value):
        raise ClientRequestError(f"options.{name} must be a finite number")
    return value


def _integer(name: str, value: object) -> int:
    """An integer; integral floats (e.g. 5.0 from JavaScript clients) are accepted like Ollama does."""
    number = _number(name, value)
    if isinstance(number, float):
        if not number.is_integer():
            raise ClientRequestError(f"options.{name} must be an integer")
        return int(number)
    return number


def _stop(value: object) -> list[str]:
    """Stop sequences as a list; empty strings are dropped because backends reject them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ClientRequestError("options.stop must be a string or a list of strings")
    return [s for s in value if s]
