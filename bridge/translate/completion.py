"""Reading a backend's OpenAI answers, for every translator: the choice of a chat.completion or of a
stream event, reasoning text, tool-call arguments, and the error a stream event carries."""

from __future__ import annotations

import json
import logging

from bridge.errors import UpstreamProtocolError
from bridge.translate.json_types import JSON

__all__ = ["error_message", "first_choice", "parse_arguments", "reasoning_text", "stream_choice"]

# The name these warnings were always logged under (log lines carry it; filters may match on it).
log = logging.getLogger("bridge.translate.responses")


def first_choice(resp: object) -> JSON:
    """choices[0] of a backend response, or UpstreamProtocolError when there is none."""
    if not isinstance(resp, dict):
        raise UpstreamProtocolError("backend response is not a JSON object")
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("backend response has no choices")
    choice: JSON = choices[0]
    return choice


def stream_choice(event: JSON) -> JSON | None:
    """choices[0], or None for usage-only events (choices empty, null or missing)."""
    choices = event.get("choices")
    if choices is None or choices == []:
        return None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("backend stream event has malformed choices")
    choice: JSON = choices[0]
    return choice


def error_message(event: JSON) -> str | None:
    """The error message carried by an SSE event ({"error": ...} or vLLM's object:error), else None."""
    if event.get("object") == "error" and "choices" not in event:
        return _text(event.get("message")) or "backend stream error"
    if "error" not in event:
        return None
    error = event["error"]
    if error is None or error is False or error == "" or error == {} or error == []:
        return None  # an empty or false "error" field says there is none
    if isinstance(error, dict):
        return _text(error.get("message")) or json.dumps(error)
    return _text(error) or "backend stream error"


def _text(value: object) -> str:
    """A message value as a non-empty string where possible."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def reasoning_text(source: JSON) -> str:
    """Reasoning text (a message, or a stream delta) under either name backends use:
    ``reasoning_content`` (DeepSeek, vLLM, llama.cpp) or ``reasoning`` (OpenRouter, newer vLLM)."""
    for key in ("reasoning_content", "reasoning"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def parse_arguments(arguments: object, name: str = "") -> JSON:
    """Tool arguments as the object Ollama clients require; never raises, never a string."""
    value = arguments
    if isinstance(arguments, str):
        if not arguments:
            return {}
        try:
            value = json.loads(arguments)
        except ValueError:
            log.warning("tool call %r: arguments are not valid JSON; sending {}", name)
            return {}
    if value is None:  # absent, or the JSON text "null": no arguments
        return {}
    return value if isinstance(value, dict) else {"value": value}
