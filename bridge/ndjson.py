"""NDJSON framing for Ollama streams: one compact JSON object and one newline per write."""

from __future__ import annotations

import json

import orjson

__all__ = ["ndjson_line", "json_bytes", "loads"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
# JSON leaves these unescaped, but str.splitlines() breaks lines at them, and the official Python
# client splits NDJSON with httpx's LineDecoder, which uses splitlines(): escape them.
_LINE_BREAKERS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


# The same three characters as UTF-8, for the fast path's byte-level check.
_LINE_BREAKER_BYTES = tuple((char.encode("utf-8"), escaped.encode()) for char, escaped in _LINE_BREAKERS.items())


def json_bytes(obj: object) -> bytes:
    """Compact UTF-8 JSON (never pretty-printed: indented JSON breaks line-based clients).

    Every streamed token passes here: orjson encodes a chunk about 10x faster than the standard
    library (perf/RESULTS.md). What orjson refuses (integers beyond 64 bits, lone surrogates,
    non-string keys) goes the standard library's way, so the accepted inputs do not change.
    """
    try:
        data = orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _json_bytes_std(obj)
    for raw, escaped in _LINE_BREAKER_BYTES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def _json_bytes_std(obj: object) -> bytes:
    text = _encode(obj)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (valid escaped JSON input): send it escaped again
        text = _encode_ascii(obj)
    for char, escaped in _LINE_BREAKERS.items():
        if char in text:
            text = text.replace(char, escaped)
    return text.encode("utf-8")


def ndjson_line(obj: dict) -> bytes:
    """One NDJSON line: never blank, never split by any client's line splitter."""
    return json_bytes(obj) + b"\n"


def loads(data: str | bytes) -> object:
    """Parse JSON (a backend's SSE event, per token): orjson when it accepts the text, else the
    standard library, which also takes what orjson refuses (NaN, integers beyond 64 bits) and
    raises its usual ``ValueError`` on invalid JSON."""
    try:
        return orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError is a ValueError: let json decide (and word it)
        return json.loads(data)
