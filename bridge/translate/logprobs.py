"""OpenAI logprobs (chat or legacy completions shape) -> Ollama's list of ``Logprob`` entries."""

from __future__ import annotations

import math
from typing import Any

from bridge.translate.json_types import JSON

__all__ = ["logprobs_from_choice"]


def logprobs_from_choice(choice: JSON) -> list[JSON] | None:
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
        tops: list[Any] = data["top_logprobs"] if isinstance(data.get("top_logprobs"), list) else []
        entries = [_legacy_logprob(tokens, values, tops, k) for k in range(min(len(tokens), len(values)))]
        return [e for e in entries if e is not None]
    return None


def _token_logprob(token: object, logprob: object, raw_bytes: object = None) -> JSON | None:
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
    out: JSON = {"token": token, "logprob": value}
    if data:
        out["bytes"] = data
    return out


def _chat_logprob(entry: JSON) -> JSON | None:
    """One chat-shaped logprob entry."""
    out = _token_logprob(entry.get("token"), entry.get("logprob"), entry.get("bytes"))
    if out is None:
        return None
    top = entry.get("top_logprobs")
    if isinstance(top, list):
        found = [_token_logprob(t.get("token"), t.get("logprob"), t.get("bytes")) for t in top if isinstance(t, dict)]
        alternatives = [a for a in found if a is not None]
        if alternatives:
            out["top_logprobs"] = alternatives
    return out


def _legacy_logprob(tokens: list[Any], values: list[Any], tops: list[Any], k: int) -> JSON | None:
    """One completions-shaped logprob entry (top alternatives come as a token->logprob dict)."""
    out = _token_logprob(tokens[k], values[k])
    if out is None:
        return None
    if k < len(tops) and isinstance(tops[k], dict):
        found = [_token_logprob(t, lp) for t, lp in tops[k].items()]
        alternatives = sorted((a for a in found if a is not None), key=lambda a: -a["logprob"])
        if alternatives:
            out["top_logprobs"] = alternatives
    return out
