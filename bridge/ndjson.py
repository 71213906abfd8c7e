"""NDJSON framing for Ollama streams: one compact JSON object and one newline per write."""

from __future__ import annotations

import json

__all__ = ["ndjson_line", "json_bytes"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
# JSON leaves these unescaped, but str.splitlines() breaks lines at them, and the official Python
# client splits NDJSON with httpx's LineDecoder, which uses splitlines(): escape them.
_LINE_BREAKERS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def json_bytes(obj: object) -> bytes:
    """Compact UTF-8 JSON (never pretty-printed: indented JSON breaks line-based clients)."""
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
