"""/api/chat and /api/generate requests -> OpenAI bodies, and the answers given without a backend."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from bridge.errors import ClientRequestError
from bridge.translate.options import openai_sampling

__all__ = [
    "THINK_CONTROLS",
    "chat_request",
    "generate_request",
    "keeps_thinking",
    "load_response",
    "short_circuit",
]

log = logging.getLogger(__name__)

THINK_CONTROLS = ("reasoning_effort", "chat_template_kwargs", "both", "off")

_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
# Base64 prefixes of the magic numbers of the image formats vision backends accept.
_MIME_PREFIXES = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
)
# A Go duration that adds up to zero: "0", "0s", "0m", "0h0m0s", "0.0ms"...
_ZERO_DURATION = re.compile(r"^[+-]?(?:0+(?:\.0*)?(?:ns|us|µs|ms|s|m|h))+$")
_SCHEMA_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


# ---------------------------------------------------------------------------------------------
# requests


def chat_request(body: dict, backend_model: str, *, stream: bool, think_control: str) -> dict:
    """Translate an Ollama /api/chat body into an OpenAI /v1/chat/completions body."""
    _check_body(body, backend_model, think_control)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ClientRequestError("messages must be a list")
    if not messages:
        raise ClientRequestError("messages must not be empty")
    return _chat_body(body, backend_model, _messages(messages), stream, think_control)


def generate_request(
    body: dict, backend_model: str, *, stream: bool, think_control: str
) -> tuple[str, dict]:
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
    images = _images(body.get("images"), "images")
    if raw or suffix:
        return "completions", _completions_body(body, backend_model, prompt, suffix, images, stream)
    messages = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append(_with_images({"role": "user", "content": prompt}, images))
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
    body: dict, backend_model: str, messages: list[dict], stream: bool, think_control: str
) -> dict:
    """Assemble the chat.completions body shared by /api/chat and /api/generate."""
    out: dict = {"model": backend_model, "messages": messages, "stream": stream}
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
    body: dict, backend_model: str, prompt: str, suffix: str, images: list[str], stream: bool
) -> dict:
    """Assemble a /v1/completions body: the prompt goes verbatim, as raw mode promises."""
    if images:
        raise ClientRequestError("images are not supported with raw or suffix")
    out: dict = {"model": backend_model, "prompt": prompt, "stream": stream}
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


def _optional_str(body: dict, name: str) -> str:
    """A string field that may be missing or null ("" then)."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClientRequestError(f"{name} must be a string")
    return value


def _messages(messages: list) -> list[dict]:
    """Translate the message list in order, linking tool results to the calls they answer."""
    out: list[dict] = []
    pending: list[list[str]] = []  # [id, name] of calls of the last assistant turn not yet answered
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ClientRequestError(f"messages[{i}] must be an object")
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise ClientRequestError(f"messages[{i}].role must be a non-empty string")
        role = role.lower()  # Ollama lower-cases roles; OpenAI only knows lower-case ones
        content = _optional_str_field(msg, "content", i)
        images = _images(msg.get("images"), f"messages[{i}].images")
        if role == "assistant" and msg.get("tool_calls"):
            calls = _assistant_calls(msg["tool_calls"], i)
            pending = [[c["id"], c["function"]["name"]] for c in calls]
            out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        elif role == "tool":
            out.append(_tool_message(msg, content, pending, i))
        else:
            if role == "assistant":
                pending = []
            out.append(_with_images({"role": role, "content": content}, images))
    return out


def _optional_str_field(msg: dict, name: str, i: int) -> str:
    """A message's string field that may be missing or null."""
    value = msg.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClientRequestError(f"messages[{i}].{name} must be a string")
    return value


def _assistant_calls(tool_calls: object, i: int) -> list[dict]:
    """Ollama tool calls (object arguments, optional id) -> OpenAI ones (string arguments, id)."""
    if not isinstance(tool_calls, list):
        raise ClientRequestError(f"messages[{i}].tool_calls must be a list")
    calls = []
    for j, call in enumerate(tool_calls):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ClientRequestError(f"{where}.function.name must be a non-empty string")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            # The Python client strips ids, so synthesise one the tool result can be linked to.
            call_id = f"call_{i}_{j}"
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": fn["name"], "arguments": _arguments_text(fn.get("arguments"), where)},
            }
        )
    return calls


def _arguments_text(arguments: object, where: str) -> str:
    """OpenAI wants arguments as a JSON string; Ollama sends an object."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments  # a raw-JSON client already encoded it
    if not isinstance(arguments, dict):
        raise ClientRequestError(f"{where}.function.arguments must be an object")
    return json.dumps(arguments)


def _tool_message(msg: dict, content: str, pending: list[list[str]], i: int) -> dict:
    """A tool result, given the tool_call_id OpenAI requires (Ollama clients send only a name)."""
    call_id = msg.get("tool_call_id")
    if isinstance(call_id, str) and call_id:
        _answer(pending, lambda p: p[0] == call_id)
        return {"role": "tool", "content": content, "tool_call_id": call_id}
    name = msg.get("tool_name") or msg.get("name")
    found = _answer(pending, lambda p: p[1] == name) if isinstance(name, str) and name else None
    if found is None:
        found = _answer(pending, lambda p: True)
    if found is None:
        raise ClientRequestError(
            f"messages[{i}]: a message with role 'tool' must answer a preceding assistant tool call"
        )
    return {"role": "tool", "content": content, "tool_call_id": found}


def _answer(pending: list[list[str]], match: Callable[[tuple[str, str]], bool]) -> str | None:
    """Remove and return the id of the first pending call that matches."""
    for k, (call_id, name) in enumerate(pending):
        if match((call_id, name)):
            del pending[k]
            return call_id
    return None


def _images(images: object, where: str) -> list[str]:
    """A list of base64 strings (or data: URIs); empty values are skipped like the clients do."""
    if images is None:
        return []
    if not isinstance(images, list):
        raise ClientRequestError(f"{where} must be a list of base64 strings")
    for image in images:
        if not isinstance(image, str):
            raise ClientRequestError(f"{where} must be a list of base64 strings")
    return [image for image in images if image]


def _with_images(message: dict, images: list[str]) -> dict:
    """Turn content into text + image_url parts when the message carries images."""
    if not images:
        return message
    parts: list[dict] = [{"type": "text", "text": message["content"]}]
    parts += [{"type": "image_url", "image_url": {"url": _data_uri(image)}} for image in images]
    return {**message, "content": parts}


def _data_uri(image: str) -> str:
    """Wrap bare base64 in a data: URI, sniffing the MIME type from the magic-number prefix."""
    if image.startswith("data:"):
        return image
    for prefix, mime in _MIME_PREFIXES:
        if image.startswith(prefix):
            return f"data:{mime};base64,{image}"
    return f"data:image/jpeg;base64,{image}"


def _tools(tools: object) -> list:
    """Tools pass through unchanged (same schema); an empty list is dropped (OpenAI rejects it)."""
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ClientRequestError("tools must be a list of objects")
    return tools


def _response_format(fmt: object) -> dict | None:
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


def _think_fields(think: object, control: str) -> dict:
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
    out: dict = {}
    if control in ("reasoning_effort", "both"):
        out["reasoning_effort"] = effort
    if control in ("chat_template_kwargs", "both"):
        out["chat_template_kwargs"] = {"enable_thinking": enabled}
    return out


def _logprob_fields(body: dict) -> dict:
    """logprobs / top_logprobs pass through under the same names, only when logprobs is true: like
    Ollama, top_logprobs alone means nothing (OpenAI would refuse it without logprobs) and
    ``logprobs: false`` is the same as absent."""
    out: dict = {}
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


# ---------------------------------------------------------------------------------------------
# short circuits (answered without the backend)


def short_circuit(kind: str, body: dict) -> str | None:
    """"load"/"unload" when Ollama would answer without inference (empty prompt/messages), else None."""
    if kind not in ("chat", "generate"):
        raise ValueError(f"kind must be 'chat' or 'generate', not {kind!r}")
    if not isinstance(body, dict):
        return None
    if kind == "chat":
        messages = body.get("messages")
        empty = messages is None or (isinstance(messages, list) and not messages)
    else:
        prompt = body.get("prompt")
        empty = prompt is None or prompt == ""
    if not empty:
        return None
    return "unload" if _is_zero_keep_alive(body.get("keep_alive")) else "load"


def _is_zero_keep_alive(value: object) -> bool:
    """keep_alive of 0 seconds in any spelling Ollama accepts (number or Go duration string)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return value == 0
    if not isinstance(value, str):
        return False
    text = value.strip()
    try:
        return float(text) == 0
    except ValueError:
        return bool(_ZERO_DURATION.match(text))


def load_response(kind: str, *, model: str, created_at: str, done_reason: str) -> dict:
    """The done:true body Ollama sends for a load/unload request."""
    if kind == "chat":
        return {
            "model": model,
            "created_at": created_at,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": done_reason,
        }
    return {
        "model": model,
        "created_at": created_at,
        "response": "",
        "done": True,
        "done_reason": done_reason,
        "context": [],
    }


def keeps_thinking(body: dict) -> bool:
    """False only when the client explicitly sent think false (then reasoning is dropped)."""
    return not (isinstance(body, dict) and body.get("think") is False)
