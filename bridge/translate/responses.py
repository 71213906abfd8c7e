"""Non-stream OpenAI responses -> Ollama bodies, and the pieces streams share with them."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

from bridge.errors import UpstreamProtocolError

__all__ = [
    "BackendTimings",
    "Timings",
    "backend_timings",
    "chat_response",
    "done_reason",
    "estimate_tokens",
    "first_choice",
    "generate_response",
    "logprobs_from_choice",
    "metrics",
    "ollama_tool_calls",
    "parse_arguments",
    "prompt_tokens_estimate",
    "reasoning_text",
    "reported_counts",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    """Integer nanoseconds measured by the caller for the final chunk's durations."""

    total_ns: int
    load_ns: int
    prompt_eval_ns: int
    eval_ns: int

    @classmethod
    def measured(cls, *, started_ns: int, sent_ns: int, first_ns: int, end_ns: int) -> Timings:
        """The bridge's own measurement from monotonic marks: load = request received -> sent to
        the backend; prompt eval = sent -> first token (streams) or response headers (non-stream);
        eval = the rest. Every part at least 1 ns."""
        first_ns = min(max(first_ns, sent_ns), end_ns) if end_ns >= sent_ns else sent_ns
        return cls(total_ns=max(1, end_ns - started_ns), load_ns=max(1, sent_ns - started_ns),
                   prompt_eval_ns=max(1, first_ns - sent_ns), eval_ns=max(1, end_ns - first_ns))


def reported_counts(resp: object) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens as the backend reported them (usage, else llama-server's
    ``timings``), None where it reported nothing: what the bridge's own token metrics count."""
    usage = resp.get("usage") if isinstance(resp, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    timings = backend_timings(resp) or BackendTimings()
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    return (prompt if prompt is not None else timings.prompt_n,
            completion if completion is not None else timings.eval_n)


@dataclass(frozen=True)
class BackendTimings:
    """The backend's own figures (llama-server's ``timings`` object); None where it gave none."""

    prompt_ns: int | None = None
    eval_ns: int | None = None
    prompt_n: int | None = None
    eval_n: int | None = None


def backend_timings(obj: object) -> BackendTimings | None:
    """llama-server's ``timings`` (``prompt_ms``, ``predicted_ms``, ``prompt_n``, ``predicted_n``)
    from a response or stream event, or None when it carries none."""
    data = obj.get("timings") if isinstance(obj, dict) else None
    if not isinstance(data, dict):
        return None
    found = BackendTimings(prompt_ns=_ms_to_ns(data.get("prompt_ms")), eval_ns=_ms_to_ns(data.get("predicted_ms")),
                           prompt_n=_count(data.get("prompt_n")), eval_n=_count(data.get("predicted_n")))
    return None if found == BackendTimings() else found


def _ms_to_ns(value: object) -> int | None:
    """Milliseconds (a finite, non-negative JSON number) as integer nanoseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(round(value * 1_000_000))


#: About four characters of English text per token (OpenAI's rule of thumb): how counts are
#: estimated when the backend reports none (docs/ollama-fields.md).
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """A token count estimated from text length; 0 only for empty text."""
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0


def prompt_tokens_estimate(openai_body: object) -> int:
    """Estimated prompt tokens of an OpenAI chat or completions body (at least 1)."""
    if not isinstance(openai_body, dict):
        return 1
    parts: list[str] = []
    for key in ("prompt", "suffix"):
        if isinstance(openai_body.get(key), str):
            parts.append(openai_body[key])
    messages = openai_body.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                parts += [v for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str)]
    if openai_body.get("tools"):
        parts.append(json.dumps(openai_body["tools"], separators=(",", ":")))
    return max(1, estimate_tokens("".join(parts)))


def chat_response(
    resp: dict, *, model: str, created_at: str, timings: Timings, keep_thinking: bool, prompt_estimate: int = 0
) -> dict:
    """A non-stream OpenAI chat.completion -> one Ollama /api/chat body."""
    choice = first_choice(resp)
    source = _choice_message(choice)
    message: dict = {"role": "assistant", "content": _content_text(source)}
    thinking = reasoning_text(source)
    if thinking and keep_thinking:
        message["thinking"] = thinking
    tool_calls = source.get("tool_calls")
    if tool_calls:
        message["tool_calls"] = ollama_tool_calls(tool_calls)
    out: dict = {"model": model, "created_at": created_at, "message": message}
    produced = message["content"] + thinking + json.dumps(tool_calls) if tool_calls else message["content"] + thinking
    return _finish(out, resp, choice, timings, prompt_estimate, estimate_tokens(produced))


def generate_response(
    resp: dict, *, model: str, created_at: str, timings: Timings, keep_thinking: bool, prompt_estimate: int = 0
) -> dict:
    """A non-stream chat.completion or text_completion -> one Ollama /api/generate body."""
    choice = first_choice(resp)
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
    out = _finish(out, resp, choice, timings, prompt_estimate, estimate_tokens(text + thinking))
    out["context"] = []  # clients index it (xrip/ollama-api-proxy#7); we have no token ids
    return out


def _finish(out: dict, resp: dict, choice: dict, timings: Timings, prompt_estimate: int, eval_estimate: int) -> dict:
    """Add done, done_reason, logprobs and metrics to a final body."""
    logprobs = logprobs_from_choice(choice)
    if logprobs:
        out["logprobs"] = logprobs
        eval_estimate = len(logprobs)  # one entry per generated token: better than a length guess
    out["done"] = True
    out["done_reason"] = done_reason(choice.get("finish_reason"))
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    out.update(metrics(usage.get("prompt_tokens"), usage.get("completion_tokens"), timings,
                       backend=backend_timings(resp), prompt_estimate=prompt_estimate, eval_estimate=eval_estimate))
    return out


def first_choice(resp: object) -> dict:
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
    """OpenAI logprobs (chat or legacy completions shape) -> Ollama's list of ``Logprob`` entries:
    ``{token, logprob, bytes, top_logprobs?}``, the backend's bytes kept (derived from the token's
    UTF-8 when it sends none), ``top_logprobs`` only when there are alternatives."""
    data = choice.get("logprobs")
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("content"), list):
        entries = [_chat_logprob(e) for e in data["content"] if isinstance(e, dict)]
        return [e for e in entries if e is not None]
    tokens, values = data.get("tokens"), data.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        tops = data.get("top_logprobs") if isinstance(data.get("top_logprobs"), list) else []
        entries = [_legacy_logprob(tokens, values, tops, k) for k in range(min(len(tokens), len(values)))]
        return [e for e in entries if e is not None]
    return None


def _token_logprob(token: object, logprob: object, raw_bytes: object = None) -> dict | None:
    """One ``TokenLogprob`` (token, logprob, bytes), or None when the backend's entry is unusable."""
    if not isinstance(token, str):
        return None
    if isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or math.isnan(logprob):
        return None
    # JSON has no -Infinity: OpenAI's own stand-in for "impossible" is -9999.
    value = max(float(logprob), -9999.0) if math.isfinite(logprob) else -9999.0
    if isinstance(raw_bytes, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255
                                           for b in raw_bytes):
        data = list(raw_bytes)
    else:
        data = list(token.encode("utf-8"))
    out: dict = {"token": token, "logprob": value}
    if data:
        out["bytes"] = data
    return out


def _chat_logprob(entry: dict) -> dict | None:
    """One chat-shaped logprob entry."""
    out = _token_logprob(entry.get("token"), entry.get("logprob"), entry.get("bytes"))
    if out is None:
        return None
    top = entry.get("top_logprobs")
    if isinstance(top, list):
        alternatives = [_token_logprob(t.get("token"), t.get("logprob"), t.get("bytes"))
                        for t in top if isinstance(t, dict)]
        alternatives = [a for a in alternatives if a is not None]
        if alternatives:
            out["top_logprobs"] = alternatives
    return out


def _legacy_logprob(tokens: list, values: list, tops: list, k: int) -> dict | None:
    """One completions-shaped logprob entry (top alternatives come as a token->logprob dict)."""
    out = _token_logprob(tokens[k], values[k])
    if out is None:
        return None
    if k < len(tops) and isinstance(tops[k], dict):
        alternatives = [_token_logprob(t, lp) for t, lp in tops[k].items()]
        alternatives = sorted((a for a in alternatives if a is not None), key=lambda a: -a["logprob"])
        if alternatives:
            out["top_logprobs"] = alternatives
    return out


def done_reason(finish_reason: object) -> str:
    """OpenAI finish_reason -> Ollama done_reason: only stop and length exist on the Ollama side."""
    return "length" if finish_reason == "length" else "stop"


def metrics(prompt_tokens: object, completion_tokens: object, timings: Timings, *,
            backend: BackendTimings | None = None, prompt_estimate: int = 0, eval_estimate: int = 0) -> dict:
    """Final-chunk metrics, every field always present (docs/ollama-fields.md).

    Counts: the backend's usage, else its ``timings`` counts, else the caller's estimates; always
    non-negative ints. Durations: integer nanoseconds, never below 1; prompt and eval durations are
    the backend's own (``timings.prompt_ms`` / ``predicted_ms``) when it reports them, else the
    bridge's measurement in ``timings``; total covers at least the three parts.
    """
    backend = backend or BackendTimings()
    prompt_count = _first_count(prompt_tokens, backend.prompt_n, prompt_estimate)
    eval_count = _first_count(completion_tokens, backend.eval_n, eval_estimate)
    load = _ns(timings.load_ns)
    prompt_eval = _ns(backend.prompt_ns if backend.prompt_ns is not None else timings.prompt_eval_ns)
    eval_ = _ns(backend.eval_ns if backend.eval_ns is not None else timings.eval_ns)
    total = max(_ns(timings.total_ns), load + prompt_eval + eval_)
    return {
        "total_duration": total,
        "load_duration": load,
        "prompt_eval_count": prompt_count,
        "prompt_eval_duration": prompt_eval,
        "eval_count": eval_count,
        "eval_duration": eval_,
    }


def _first_count(*candidates: object) -> int:
    """The first usable count; 0 when none is."""
    for value in candidates:
        count = _count(value)
        if count is not None:
            return count
    return 0


def _ns(value: object) -> int:
    """A duration as an int of at least 1 ns (clients reject fractional floats, choke on null, and
    Ollama's own tests reject zero)."""
    try:
        return max(1, int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 1


def _count(value: object) -> int | None:
    """A token count as an int, or None when absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return max(0, int(value))
