"""The Messages API's answers: a chat.completion -> one Anthropic ``message`` (content blocks, stop
reason, usage), and Anthropic's error envelope. Streams reuse the stop reason, usage and errors."""

from __future__ import annotations

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import first_choice, parse_arguments, reasoning_text
from bridge.translate.json_types import JSON

__all__ = ["error_body", "error_type", "messages_response", "stop_reason", "token_count", "usage_body"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                 "content_filter": "refusal"}


def messages_response(resp: JSON, *, model: str, message_id: str, stop: tuple[str, ...] = (),
                      keep_thinking: bool = True) -> JSON:
    """A non-stream chat.completion -> one Anthropic ``message``."""
    choice = first_choice(resp)
    message = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content: list[JSON] = []
    thinking = reasoning_text(message)
    if thinking and keep_thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = _message_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    calls = message["tool_calls"] if isinstance(message.get("tool_calls"), list) else []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UpstreamProtocolError("backend tool call has no function name")
        call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else f"toolu_{message_id}_{k}"
        content.append({"type": "tool_use", "id": call_id, "name": fn["name"],
                        "input": parse_arguments(fn.get("arguments"), fn["name"])})
    if not content:
        content.append({"type": "text", "text": ""})
    reason, sequence = stop_reason(choice, stop, has_tool_calls=bool(calls))
    usage = resp["usage"] if isinstance(resp.get("usage"), dict) else {}
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage_body(usage.get("prompt_tokens"), usage.get("completion_tokens"), usage, default=0)}


def stop_reason(choice: JSON, stop: tuple[str, ...] = (), *, has_tool_calls: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a choice's finish_reason.

    A stop sequence is recognised only when the backend names the one it matched (vLLM's
    ``stop_reason``, SGLang's ``matched_stop``); otherwise a ``stop`` is ``end_turn``."""
    finish = choice.get("finish_reason")
    if finish in _STOP_REASONS:
        return _STOP_REASONS[finish], None
    if has_tool_calls:
        return "tool_use", None
    for key in ("stop_reason", "matched_stop"):
        matched = choice.get(key)
        if isinstance(matched, str) and matched in stop:
            return "stop_sequence", matched
    return "end_turn", None


def usage_body(prompt: object, completion: object, usage: JSON, *, default: int | None) -> JSON:
    """Anthropic ``usage`` from backend counts; ``input_tokens`` left out when unknown and no default."""
    out: JSON = {}
    count = token_count(prompt)
    if count is not None or default is not None:
        out["input_tokens"] = count if count is not None else default
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is not None:
        out["cache_read_input_tokens"] = cached
    count = token_count(completion)
    out["output_tokens"] = count if count is not None else (default or 0)
    return out


def token_count(value: object) -> int | None:
    """A count the backend reported (0 or more), or None when it sent none usable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return max(0, int(value))


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str) -> JSON:
    """Anthropic's error envelope: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": error_type(status), "message": message or f"HTTP {status}"}}
