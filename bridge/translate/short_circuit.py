"""Requests Ollama answers without inference (empty prompt or messages: load or unload the model)."""

from __future__ import annotations

import re

from bridge.translate.json_types import JSON

__all__ = ["load_response", "short_circuit"]

# A Go duration that adds up to zero: "0", "0s", "0m", "0h0m0s", "0.0ms"...
_ZERO_DURATION = re.compile(r"^[+-]?(?:0+(?:\.0*)?(?:ns|us|µs|ms|s|m|h))+$")


def short_circuit(kind: str, body: JSON) -> str | None:
    """"load"/"unload" when Ollama would answer without inference (empty prompt/messages), else None."""
    if kind not in ("chat", "generate"):
        raise ValueError(f"kind must be 'chat' or 'generate', not {kind!r}")
    if not isinstance(body, dict):
        return None
    if kind == "chat":
        messages = body.get("messages")
        empty = messages is None or (isinstance(messages, list) and not messages)
    else:
        prompt = body.get("prompt")
        empty = prompt is None or prompt == ""
    if not empty:
        return None
    return "unload" if _is_zero_keep_alive(body.get("keep_alive")) else "load"


def _is_zero_keep_alive(value: object) -> bool:
    """keep_alive of 0 seconds in any spelling Ollama accepts (number or Go duration string)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return value == 0
    if not isinstance(value, str):
        return False
    text = value.strip()
    try:
        return float(text) == 0
    except ValueError:
        return bool(_ZERO_DURATION.match(text))


def load_response(kind: str, *, model: str, created_at: str, done_reason: str) -> JSON:
    """The done:true body Ollama sends for a load/unload request."""
    if kind == "chat":
        return {
            "model": model,
            "created_at": created_at,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": done_reason,
        }
    return {
        "model": model,
        "created_at": created_at,
        "response": "",
        "done": True,
        "done_reason": done_reason,
        "context": [],
    }
