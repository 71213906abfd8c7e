"""What Ollama's final (done) body reports besides the text: ``done_reason``, the token counts
(the backend's, else estimates) and the durations (the backend's, else the bridge's measurement)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, cast

from bridge.translate.json_types import JSON

__all__ = [
    "CHARS_PER_TOKEN",
    "BackendTimings",
    "Timings",
    "backend_timings",
    "done_reason",
    "estimate_tokens",
    "metrics",
    "prompt_tokens_estimate",
    "reported_counts",
]

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
    found = resp.get("usage") if isinstance(resp, dict) else None
    usage: JSON = found if isinstance(found, dict) else {}
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


def done_reason(finish_reason: object) -> str:
    """OpenAI finish_reason -> Ollama done_reason: only stop and length exist on the Ollama side."""
    return "length" if finish_reason == "length" else "stop"


def metrics(prompt_tokens: object, completion_tokens: object, timings: Timings, *,
            backend: BackendTimings | None = None, prompt_estimate: int = 0, eval_estimate: int = 0) -> dict[str, int]:
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
        # Whatever int() takes (or refuses: then 1); the cast only tells mypy so.
        return max(1, int(cast(Any, value)))
    except (TypeError, ValueError, OverflowError):
        return 1


def _count(value: object) -> int | None:
    """A token count as an int, or None when absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return max(0, int(value))
