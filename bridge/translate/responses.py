"""Non-stream OpenAI responses -> Ollama /api/chat and /api/generate bodies."""

from __future__ import annotations

import json

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import first_choice, parse_arguments, reasoning_text
from bridge.translate.json_types import JSON
from bridge.translate.logprobs import logprobs_from_choice
from bridge.translate.ollama_metrics import Timings as Timings
from bridge.translate.ollama_metrics import backend_timings, done_reason, estimate_tokens, metrics
from bridge.translate.ollama_metrics import prompt_tokens_estimate as prompt_tokens_estimate
from bridge.translate.ollama_metrics import reported_counts as reported_counts

__all__ = [
    "Timings",  # re-exported from ollama_metrics (routes and streaming import it from here)
    "chat_response",
    "generate_response",
    "ollama_tool_calls",
    "prompt_tokens_estimate",  # re-exported from ollama_metrics
    "reported_counts",  # re-exported from ollama_metrics
]


def chat_response(
    resp: JSON, *, model: str, created_at: str, timings: Timings, keep_thinking: bool, prompt_estimate: int = 0
) -> JSON:
    """A non-stream OpenAI chat.completion -> one Ollama /api/chat body."""
    choice = first_choice(resp)
    source = _choice_message(choice)
    message: JSON = {"role": "assistant", "content": _content_text(source)}
    thinking = reasoning_text(source)
    if thinking and keep_thinking:
        message["thinking"] = thinking
    tool_calls = source.get("tool_calls")
    if tool_calls:
        message["tool_calls"] = ollama_tool_calls(tool_calls)
    out: JSON = {"model": model, "created_at": created_at, "message": message}
    produced = message["content"] + thinking + json.dumps(tool_calls) if tool_calls else message["content"] + thinking
    return _finish(out, resp, choice, timings, prompt_estimate, estimate_tokens(produced))


def generate_response(
    resp: JSON, *, model: str, created_at: str, timings: Timings, keep_thinking: bool, prompt_estimate: int = 0
) -> JSON:
    """A non-stream chat.completion or text_completion -> one Ollama /api/generate body."""
    choice = first_choice(resp)
    if isinstance(choice.get("message"), dict):
        source = choice["message"]
        text = _content_text(source)
        thinking = reasoning_text(source)
    else:
        text = choice["text"] if isinstance(choice.get("text"), str) else ""
        thinking = ""
    out: JSON = {"model": model, "created_at": created_at, "response": text}
    if thinking and keep_thinking:
        out["thinking"] = thinking
    out = _finish(out, resp, choice, timings, prompt_estimate, estimate_tokens(text + thinking))
    out["context"] = []  # clients index it (xrip/ollama-api-proxy#7); we have no token ids
    return out


def _finish(out: JSON, resp: JSON, choice: JSON, timings: Timings, prompt_estimate: int, eval_estimate: int) -> JSON:
    """Add done, done_reason, logprobs and metrics to a final body."""
    logprobs = logprobs_from_choice(choice)
    if logprobs:
        out["logprobs"] = logprobs
        eval_estimate = len(logprobs)  # one entry per generated token: better than a length guess
    out["done"] = True
    out["done_reason"] = done_reason(choice.get("finish_reason"))
    usage = resp["usage"] if isinstance(resp.get("usage"), dict) else {}
    out.update(metrics(usage.get("prompt_tokens"), usage.get("completion_tokens"), timings,
                       backend=backend_timings(resp), prompt_estimate=prompt_estimate, eval_estimate=eval_estimate))
    return out


def _choice_message(choice: JSON) -> JSON:
    """choices[0].message, tolerating a text_completion on the chat route."""
    message = choice.get("message")
    if isinstance(message, dict):
        return message
    if isinstance(choice.get("text"), str):
        return {"content": choice["text"]}
    raise UpstreamProtocolError("backend response choice has no message")


def _content_text(source: JSON) -> str:
    """Message content as one string; content-part lists are concatenated."""
    content = source.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def ollama_tool_calls(tool_calls: object) -> list[JSON]:
    """OpenAI tool calls (string arguments) -> Ollama ones (object arguments)."""
    if not isinstance(tool_calls, list):
        raise UpstreamProtocolError("backend tool_calls is not a list")
    out = []
    for index, call in enumerate(tool_calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UpstreamProtocolError("backend tool call has no function name")
        entry: JSON = {}
        if isinstance(call.get("id"), str) and call["id"]:
            entry["id"] = call["id"]
        entry["function"] = {
            "index": index,
            "name": fn["name"],
            "arguments": parse_arguments(fn.get("arguments"), fn["name"]),
        }
        out.append(entry)
    return out
