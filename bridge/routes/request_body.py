"""The client's request body: one JSON object, parsed strictly, and the fields every route reads."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import request

from ..errors import ClientRequestError

__all__ = ["read_json_object", "require_model_name", "stream_flag"]


def read_json_object() -> dict:
    """The request body as a JSON object, or a 400 saying what is wrong."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ClientRequestError("request body is empty; expected a JSON object")
    try:
        # Decoded as UTF-8 first: json.loads(bytes) would also take UTF-16/32 and a BOM, which
        # Ollama (Go) refuses.
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float,
                          parse_int=_int64)
    except UnicodeDecodeError:
        raise ClientRequestError("request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ClientRequestError(f"invalid JSON in request body: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # NaN / Infinity
        raise ClientRequestError(f"invalid JSON in request body: {exc}") from None
    except RecursionError:
        raise ClientRequestError("invalid JSON in request body: nested too deeply") from None
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    return body


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (and every backend) does not.
    raise ValueError(f"{name} is not valid JSON")


def _int64(text: str) -> int:
    # Ollama (Go) and OpenAI-compatible servers read integers as 64-bit: a bigger one is a 400
    # there, so it is one here too, not a request the backend may mis-read.
    # More than 19 digits never fits (and int() of over 4,300 digits fails with Python's own message).
    value = int(text) if len(text) <= 20 else 2**63
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"number {text[:40]} is out of range for a 64-bit integer")
    return value


def _finite_float(text: str) -> float:
    # 1e400 parses to infinity, which would leave the bridge as the non-JSON token Infinity.
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text[:40]} is out of range for a 64-bit float")
    return value


def require_model_name(body: dict[str, Any], default_model: str | None, *,
                       keys: tuple[str, ...] = ("model",)) -> str:
    """The model name the client asked for (``DEFAULT_MODEL`` when absent)."""
    for key in keys:
        value = body.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ClientRequestError(f"'{key}' must be a string")
        if len(value) > 512 or any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in value):
            raise ClientRequestError(f"'{key}' is not a valid model name")
        return value
    if default_model:
        return default_model
    raise ClientRequestError("model is required")


def stream_flag(body: dict, *, default: bool) -> bool:
    """The request's ``stream``: ``default`` when absent or null (Ollama streams by default; the
    Anthropic and Responses APIs do not), else it must be a boolean."""
    value = body.get("stream")
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ClientRequestError("'stream' must be true or false")
    return value
