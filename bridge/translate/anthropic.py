"""Anthropic Messages API (``/v1/messages``) requests -> OpenAI chat.completions bodies. Pure.

:func:`messages_request` translates a request (400 on what is invalid or cannot be expressed);
what the model reads is translated in ``anthropic_input``, the settings around it here. The
answers are ``anthropic_answer`` (and ``anthropic_stream`` for streams), the token estimate is
``anthropic_count``; the names the routes use are re-exported here. The backend model and the
reasoning control are handed in by the caller.
"""

from __future__ import annotations

import math

from bridge.errors import ClientRequestError
from bridge.translate.anthropic_answer import error_body as error_body
from bridge.translate.anthropic_answer import messages_response as messages_response
from bridge.translate.anthropic_count import count_tokens as count_tokens
from bridge.translate.anthropic_input import translate_messages, translate_system, translate_tools
from bridge.translate.json_types import JSON
from bridge.translate.reasoning import reasoning_controls

__all__ = [
    "count_tokens",  # re-exported from anthropic_count (the Anthropic routes import it from here)
    "error_body",  # re-exported from anthropic_answer (app.py and the routes import it from here)
    "keeps_thinking",
    "messages_request",
    "messages_response",  # re-exported from anthropic_answer
    "stop_sequences",
]

# Extended-thinking budgets -> the effort levels chat-completions backends understand.
_BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))


def messages_request(body: JSON, backend_model: str, *, stream: bool, think_control: str) -> JSON:
    """Translate a Messages API body into an OpenAI /v1/chat/completions body."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ClientRequestError("max_tokens: field required (an integer of at least 1)")
    if body.get("mcp_servers"):
        raise ClientRequestError("mcp_servers: MCP connectors are not supported by this server")
    out: JSON = {"model": backend_model,
                 "messages": translate_system(body.get("system")) + translate_messages(body.get("messages")),
                 "max_tokens": max_tokens, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ClientRequestError(f"{name}: must be a number")
            out[name] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ClientRequestError("stop_sequences: must be a list of strings")
        if [s for s in stop if s]:
            out["stop"] = [s for s in stop if s]
    tools = translate_tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    out.update(_tool_choice(body.get("tool_choice"), bool(tools)))
    out.update(_thinking(body.get("thinking"), think_control))
    response_format = _output_format(body)
    if response_format:
        out["response_format"] = response_format
    user = _metadata_user(body.get("metadata"))
    if user:
        out["user"] = user
    return out


def stop_sequences(body: JSON) -> tuple[str, ...]:
    """The request's stop sequences (to recognise which one ended a response)."""
    stop = body.get("stop_sequences") if isinstance(body, dict) else None
    return tuple(s for s in stop if isinstance(s, str) and s) if isinstance(stop, list) else ()


def keeps_thinking(body: JSON) -> bool:
    """False only when the client turned thinking off: then reasoning text is dropped."""
    thinking = body.get("thinking") if isinstance(body, dict) else None
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


def _tool_choice(choice: object, have_tools: bool) -> JSON:
    if choice is None:
        return {}
    settings: JSON = choice if isinstance(choice, dict) else {}
    kind = settings.get("type")
    out: JSON = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(settings.get("name"), str) and settings["name"]:
        out["tool_choice"] = {"type": "function", "function": {"name": settings["name"]}}
    else:
        raise ClientRequestError("tool_choice: must be {type: auto|any|none} or {type: tool, name}")
    if not have_tools:
        return {}  # OpenAI rejects a tool_choice without tools; Anthropic treats it as nothing to call
    if settings.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _thinking(thinking: object, control: str) -> JSON:
    """``thinking`` -> the reasoning controls this backend understands (see THINK_CONTROL)."""
    if thinking is None:
        return {}
    settings: JSON = thinking if isinstance(thinking, dict) else {}
    kind = settings.get("type")
    if kind == "disabled":
        return reasoning_controls(None, control)
    if kind == "adaptive":
        return reasoning_controls("medium", control)
    if kind != "enabled":
        raise ClientRequestError("thinking: must be {type: enabled, budget_tokens}, {type: adaptive} "
                                 "or {type: disabled}")
    budget = settings.get("budget_tokens")
    effort = "high"
    if isinstance(budget, int) and not isinstance(budget, bool):
        effort = next((name for limit, name in _BUDGET_EFFORTS if budget < limit), "high")
    return reasoning_controls(effort, control)


def _output_format(body: JSON) -> JSON | None:
    """Structured outputs: ``output_config.format`` (or the older beta ``output_format``) with a
    JSON schema -> ``response_format`` json_schema. ``output_config.effort`` is not mapped."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise ClientRequestError("output_config: must be an object")
    fmt = (config or {}).get("format") or body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise ClientRequestError("output_config.format: must be {type: json_schema, schema: {...}}")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def _metadata_user(metadata: object) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ClientRequestError("metadata: must be an object")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise ClientRequestError("metadata.user_id: must be a string")
    return user or None
