"""The Responses API's answers: the ``response`` object (its skeleton, then a chat.completion as a
completed or incomplete one) and the output items, usage and ids that streams build the same way."""

from __future__ import annotations

import json

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import first_choice, reasoning_text
from bridge.translate.json_types import JSON

__all__ = [
    "ItemIds",
    "call_item",
    "final_response",
    "message_item",
    "reasoning_item",
    "response_object",
    "responses_response",
    "text_part",
    "usage_count",
]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(body: JSON, *, response_id: str, created_at: int, model: str) -> JSON:
    """The ``response`` skeleton (status in_progress, no output) echoing the request's settings."""
    text = body["text"] if isinstance(body.get("text"), dict) else {}
    reasoning = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": "in_progress",
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "store": False,  # nothing is stored, whatever the request said
        "temperature": body.get("temperature"), "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
        "top_p": body.get("top_p"), "truncation": "disabled", "usage": None,
        "metadata": body["metadata"] if isinstance(body.get("metadata"), dict) else {},
    }


def responses_response(resp: JSON, *, base: JSON, keep_reasoning: bool = True) -> JSON:
    """A non-stream chat.completion -> the completed (or incomplete) ``response``."""
    choice = first_choice(resp)
    message = choice["message"] if isinstance(choice.get("message"), dict) else {}
    ids = ItemIds(base["id"])
    output: list[JSON] = []
    thinking = reasoning_text(message)
    if thinking and keep_reasoning:
        output.append(reasoning_item(ids.next("rs"), thinking, "completed"))
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(content, str) and content:
        output.append(message_item(ids.next("msg"), content, "completed"))
    calls = message["tool_calls"] if isinstance(message.get("tool_calls"), list) else []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UpstreamProtocolError("backend tool call has no function name")
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        item_id = ids.next("fc")
        call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else f"call_{item_id}"
        output.append(call_item(item_id, call_id, fn["name"], arguments, "completed"))
    usage = resp["usage"] if isinstance(resp.get("usage"), dict) else {}
    return final_response(base, output, choice.get("finish_reason"), usage)


def final_response(base: JSON, output: list[JSON], finish: object, usage: JSON) -> JSON:
    """The finished ``response``: completed, or incomplete when the backend stopped at a limit."""
    reason = _INCOMPLETE.get(finish) if isinstance(finish, str) else None
    return {**base, "status": "incomplete" if reason else "completed",
            "incomplete_details": {"reason": reason} if reason else None,
            "output": output, "usage": _usage(usage)}


def _usage(usage: JSON) -> JSON:
    prompt = usage_count(usage.get("prompt_tokens"))
    completion = usage_count(usage.get("completion_tokens"))
    details = usage["prompt_tokens_details"] if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    found = usage.get("completion_tokens_details")
    out_details: JSON = found if isinstance(found, dict) else {}
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": usage_count(details.get("cached_tokens"))},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": usage_count(out_details.get("reasoning_tokens"))},
            "total_tokens": prompt + completion}


def usage_count(value: object) -> int:
    """A count the backend reported (0 or more), 0 when it sent none usable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, int(value))


def message_item(item_id: str, text: str, status: str) -> JSON:
    """An assistant message output item (its text part only once it is complete)."""
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [text_part(text)] if status != "in_progress" else []}


def text_part(text: str) -> JSON:
    """The ``output_text`` content part of a message item."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, status: str) -> JSON:
    """A reasoning output item (its text only once it is complete)."""
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    """A function_call output item."""
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


class ItemIds:
    """Item ids derived from the response id: ``msg_<hex>_0``, ``fc_<hex>_1``..."""

    def __init__(self, response_id: str) -> None:
        self._stem = response_id.split("_", 1)[-1]
        self._n = 0

    def next(self, prefix: str) -> str:
        """The next item id, with its type's prefix."""
        self._n += 1
        return f"{prefix}_{self._stem}_{self._n - 1}"
