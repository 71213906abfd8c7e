"""/api/chat and /api/generate requests -> OpenAI chat.completions (or completions) bodies."""

from __future__ import annotations

import re

from bridge.errors import ClientRequestError
from bridge.translate.chat_messages import image_list, translate_messages, with_images
from bridge.translate.json_types import JSON
from bridge.translate.options import openai_sampling
from bridge.translate.short_circuit import load_response as load_response
from bridge.translate.short_circuit import short_circuit as short_circuit

__all__ = [
    "THINK_CONTROLS",
    "chat_request",
    "generate_request",
    "keeps_thinking",
    "load_response",  # re-exported from short_circuit (the Ollama routes import it from here)
    "short_circuit",  # re-exported from short_circuit
]

THINK_CONTROLS = ("reasoning_effort", "chat_template_kwargs", "both", "off")

_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_SCHEMA_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


def chat_request(body: JSON, backend_model: str, *, stream: bool, think_control: str) -> JSON:
    """Translate an Ollama /api/chat body into an OpenAI /v1/chat/completions body."""
    _check_body(body, backend_model, think_control)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ClientRequestError("messages must be a list")
    if not messages:
        raise ClientRequestError("messages must not be empty")
    return _chat_body(body, backend_model, translate_messages(messages), stream, think_control)


def generate_request(
    body: JSON, backend_model: str, *, stream: bool, think_control: str
) -> tuple[str, JSON]:
    """Translate /api/generate: ("chat", body) normally, ("completions", body) for raw or suffix."""
    _check_body(body, backend_model, think_control)
    prompt = _optional_str(body, "prompt")
    system = _optional_str(body, "system")
    suffix = _optional_str(body, "suffix")
    template = _optional_str(body, "template")
    raw = body.get("raw")
    if raw is not None and not isinstance(raw, bool):
        raise ClientRequestError("raw must be a boolean")
    if raw and (system or template or body.get("context")):
        # Same rule and wording as Ollama: raw prompts are already fully templated.
        raise ClientRequestError("raw mode does not support template, system, or context")
    images = image_list(body.get("images"), "images")
    if raw or suffix:
        return "completions", _completions_body(body, backend_model, prompt, suffix, images, stream)
    messages: list[JSON] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append(with_images({"role": "user", "content": prompt}, images))
    return "chat", _chat_body(body, backend_model, messages, stream, think_control)


def _check_body(body: object, backend_model: object, think_control: str) -> None:
    """Validate what every generation request needs before any field is translated."""
    if think_control not in THINK_CONTROLS:
        raise ValueError(f"think_control must be one of {THINK_CONTROLS}, not {think_control!r}")
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    if not isinstance(backend_model, str) or not backend_model:
        raise ClientRequestError("model is required")
    if "model" in body and not isinstance(body["model"], str):
        raise ClientRequestError("model must be a string")


def _chat_body(
    body: JSON, backend_model: str, messages: list[JSON], stream: bool, think_control: str
) -> JSON:
    """Assemble the chat.completions body shared by /api/chat and /api/generate."""
    out: JSON = {"model": backend_model, "messages": messages, "stream": stream}
    if stream:
        # Without this the backend sends no usage and the final chunk would lack token counts.
        out["stream_options"] = {"include_usage": True}
    out.update(openai_sampling(body.get("options")))
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    response_format = _response_format(body.get("format"))
    if response_format:
        out["response_format"] = response_format
    out.update(_think_fields(body.get("think"), think_control))
    out.update(_logprob_fields(body))
    return out


def _completions_body(
    body: JSON, backend_model: str, prompt: str, suffix: str, images: list[str], stream: bool
) -> JSON:
    """Assemble a /v1/completions body: the prompt goes verbatim, as raw mode promises."""
    if images:
        raise ClientRequestError("images are not supported with raw or suffix")
    out: JSON = {"model": backend_model, "prompt": prompt, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    if suffix:
        out["suffix"] = suffix
    out.update(openai_sampling(body.get("options")))
    fields = _logprob_fields(body)
    if fields.get("logprobs"):
        # The legacy API spells it as one integer: how many alternatives per token.
        out["logprobs"] = fields.get("top_logprobs", 0)
    return out


def _optional_str(body: JSON, name: str) -> str:
    """A string field that may be missing or null ("" then)."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClientRequestError(f"{name} must be a string")
    return value


def _tools(tools: object) -> list[JSON]:
    """Tools pass through unchanged (same schema); an empty list is dropped (OpenAI rejects it)."""
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ClientRequestError("tools must be a list of objects")
    return tools


def _response_format(fmt: object) -> JSON | None:
    """Ollama ``format`` -> OpenAI ``response_format``."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(fmt.get("title")), "schema": fmt, "strict": False},
        }
    raise ClientRequestError('format must be "json" or a JSON schema object')


def _schema_name(title: object) -> str:
    """OpenAI requires a name matching [A-Za-z0-9_-]{1,64}; derive it from the schema title."""
    if not isinstance(title, str):
        return "response"
    name = _SCHEMA_NAME_BAD.sub("_", title.strip())[:64]
    return name if name.strip("_") else "response"


def _think_fields(think: object, control: str) -> JSON:
    """Ollama ``think`` -> the reasoning controls this backend understands (see THINK_CONTROLS)."""
    if think is None:
        return {}
    if isinstance(think, bool):
        effort = "medium" if think else "none"
        enabled = think
    elif isinstance(think, str) and think in _EFFORTS:
        effort, enabled = _EFFORTS[think], True
    else:
        raise ClientRequestError('think must be a boolean or one of "low", "medium", "high", "max"')
    out: JSON = {}
    if control in ("reasoning_effort", "both"):
        out["reasoning_effort"] = effort
    if control in ("chat_template_kwargs", "both"):
        out["chat_template_kwargs"] = {"enable_thinking": enabled}
    return out


def _logprob_fields(body: JSON) -> JSON:
    """logprobs / top_logprobs pass through under the same names, only when logprobs is true: like
    Ollama, top_logprobs alone means nothing (OpenAI would refuse it without logprobs) and
    ``logprobs: false`` is the same as absent."""
    out: JSON = {}
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise ClientRequestError("logprobs must be a boolean")
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20):
        raise ClientRequestError("top_logprobs must be an integer between 0 and 20")
    if logprobs:
        out["logprobs"] = True
        if top is not None:
            out["top_logprobs"] = top
    return out


def keeps_thinking(body: JSON) -> bool:
    """False only when the client explicitly sent think false (then reasoning is dropped)."""
    return not (isinstance(body, dict) and body.get("think") is False)
