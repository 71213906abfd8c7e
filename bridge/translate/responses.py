"""Non-stream OpenAI responses -> Ollama bodies, and the pieces streams share with them."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from bridge.errors import UpstreamProtocolError

__all__ = [
    "Timings",
    "chat_response",
    "done_reason",
    "generate_response",
    "logprobs_from_choice",
    "metrics",
    "ollama_tool_calls",
    "parse_arguments",
    "reasoning_text",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    """Integer nanoseconds measured by the caller for the final chunk's durations."""

    total_ns: int
    load_ns: int
    prompt_eval_ns: int
    eval_ns: int



def chat_response(
    resp: dict, *, model: str, created_at: str, timings: Timings, keep_thinking: bool
) -> dict:
    """A non-stream OpenAI chat.completion -> one Ollama /api/chat body."""
    choice = _first_choice(resp)
    source = _choice_message(choice)
    message: dict = {"role": "assistant", "content": _content_text(source)}
    thinking = reasoning_text(source)
    if thinking and keep_thinking:
        message["thinking"] = thinking
    tool_calls = source.get("tool_calls")
    if tool_calls:
        message["tool_calls"] = ollama_tool_calls(tool_calls)
    out: dict = {"model": model, "created_at": created_at, "message": message}
    return _finish(out, resp, choice, timings)


def generate_response(
    resp: dict, *, model: str, created_at: str, timings: Timings, keep_thinking: bool
) -> dict:
    """A non-stream chat.completion or text_completion -> one Ollama /api/generate body."""
    choice = _first_choice(resp)
    if isinstance(choice.get("message"), dict):
        source = choice["message"]
        text = _content_text(source)
        thinking = reasoning_text(source)
    else:
        text = choice.get("text") if isinstance(choice.get("text"), str) else ""
        thinking = ""
    out: dict = {"model": model, "created_at": created_at, "response": text}
    if thinking and keep_thinking:
        out["thinking"] = thinking
    out = _finish(out, resp, choice, timings)
    out["context"] = []  # clients index it (xrip/ollama-api-proxy#7); we have no token ids
    return out


def _finish(out: dict, resp: dict, choice: dict, timings: Timings) -> dict:
    """Add done, done_reason, logprobs and metrics to a final body."""
    logprobs = logprobs_from_choice(choice)
    if logprobs:
        out["logprobs"] = logprobs
    out["done"] = True
    out["done_reason"] = done_reason(choice.get("finish_reason"))
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    out.update(metrics(usage.get("prompt_tokens"), usage.get("completion_tokens"), timings))
    return out


def _first_choice(resp: object) -> dict:
    """choices[0] of a backend response, or UpstreamProtocolError when there is none."""
    if not isinstance(resp, dict):
        raise UpstreamProtocolError("backend response is not a JSON object")
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("backend response has no choices")
    return choices[0]


def _choice_message(choice: dict) -> dict:
    """choices[0].message, tolerating a text_completion on the chat route."""
    message = choice.get("message")
    if isinstance(message, dict):
        return message
    if isinstance(choice.get("text"), str):
        return {"content": choice["text"]}
    raise UpstreamProtocolError("backend response choice has no message")


def _content_text(source: dict) -> str:
    """Message content as one string; content-part lists are concatenated."""
    content = source.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def reasoning_text(source: dict) -> str:
    """Reasoning text (a message, or a stream delta) under either name backends use:
    ``reasoning_content`` (DeepSeek, vLLM, llama.cpp) or ``reasoning`` (OpenRouter, newer vLLM)."""
    for key in ("reasoning_content", "reasoning"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def ollama_tool_calls(tool_calls: object) -> list[dict]:
    """OpenAI tool calls (string arguments) -> Ollama ones (object arguments)."""
    if not isinstance(tool_calls, list):
        raise UpstreamProtocolError("backend tool_calls is not a list")
    out = []
    for index, call in enumerate(tool_calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UpstreamProtocolError("backend tool call has no function name")
        entry: dict = {}
        if isinstance(call.get("id"), str) and call["id"]:
            entry["id"] = call["id"]
        entry["function"] = {
            "index": index,
            "name": fn["name"],
            "arguments": parse_arguments(fn.get("arguments"), fn["name"]),
        }
        out.append(entry)
    return out


def parse_arguments(arguments: object, name: str = "") -> dict:
    """Tool arguments as the object Ollama clients require; never raises, never a string."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            log.warning("tool call %r: arguments are not valid JSON; sending {}", name)
            return {}
    else:
        value = arguments
    return value if isinstance(value, dict) else {"value": value}


def logprobs_from_choice(choice: dict) -> list[dict] | None:
    """OpenAI logprobs (chat or legacy completions shape) -> Ollama's list of token entries."""
    data = choice.get("logprobs")
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("content"), list):
        return [_chat_logprob(e) for e in data["content"] if isinstance(e, dict)]
    tokens, values = data.get("tokens"), data.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        tops = data.get("top_logprobs") if isinstance(data.get("top_logprobs"), list) else []
        return [_legacy_logprob(tokens, values, tops, k) for k in range(min(len(tokens), len(values)))]
    return None


def _chat_logprob(entry: dict) -> dict:
    """One chat-shaped logprob entry."""
    out = {"token": entry.get("token"), "logprob": entry.get("logprob")}
    top = entry.get("top_logprobs")
    if isinstance(top, list):
        out["top_logprobs"] = [
            {"token": t.get("token"), "logprob": t.get("logprob")} for t in top if isinstance(t, dict)
        ]
    return out


def _legacy_logprob(tokens: list, values: list, tops: list, k: int) -> dict:
    """One completions-shaped logprob entry (top alternatives come as a token->logprob dict)."""
    out = {"token": tokens[k], "logprob": values[k]}
    if k < len(tops) and isinstance(tops[k], dict):
        out["top_logprobs"] = [{"token": t, "logprob": lp} for t, lp in tops[k].items()]
    return out


def done_reason(finish_reason: object) -> str:
    """OpenAI finish_reason -> Ollama done_reason: only stop and length exist on the Ollama side."""
    return "length" if finish_reason == "length" else "stop"


def metrics(prompt_tokens: object, completion_tokens: object, timings: Timings) -> dict:
    """Final-chunk metrics: int ns durations always, token counts only when the backend sent them."""
    out: dict = {
        "total_duration": _ns(timings.total_ns),
        "load_duration": _ns(timings.load_ns),
    }
    count = _count(prompt_tokens)
    if count is not None:
        out["prompt_eval_count"] = count
    out["prompt_eval_duration"] = _ns(timings.prompt_eval_ns)
    count = _count(completion_tokens)
    if count is not None:
        out["eval_count"] = count
    out["eval_duration"] = _ns(timings.eval_ns)
    return out


def _ns(value: object) -> int:
    """A duration as a non-negative int (clients reject fractional floats and choke on null)."""
    try:
        return max(0, int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0


def _count(value: object) -> int | None:
    """A token count as an int, or None when absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return max(0, int(value))
