"""Reasoning switched on (at an effort) or off, in the THINK_CONTROL spelling a backend understands."""

from __future__ import annotations

from bridge.translate.json_types import JSON

__all__ = ["reasoning_controls"]

_EFFORTS = ("low", "medium", "high")


def reasoning_controls(effort: str | None, control: str) -> JSON:
    """Reasoning on at ``effort`` (low/medium/high), or off (None), as THINK_CONTROL spells it:
    ``reasoning_effort`` (OpenAI, vLLM), ``chat_template_kwargs`` (llama.cpp, Qwen), both, or off."""
    if effort is not None and effort not in _EFFORTS:
        raise ValueError(f"effort must be one of {_EFFORTS} or None, not {effort!r}")
    out: JSON = {}
    if control in ("reasoning_effort", "both"):
        out["reasoning_effort"] = effort or "none"
    if control in ("chat_template_kwargs", "both"):
        out["chat_template_kwargs"] = {"enable_thinking": effort is not None}
    return out
