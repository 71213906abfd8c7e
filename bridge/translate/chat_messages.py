"""Ollama chat messages (text, images, tool calls and tool results) -> OpenAI chat messages."""

from __future__ import annotations

import json
from collections.abc import Callable

from bridge.errors import ClientRequestError
from bridge.translate.json_types import JSON

__all__ = ["image_list", "translate_messages", "with_images"]

# Base64 prefixes of the magic numbers of the image formats vision backends accept.
_MIME_PREFIXES = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
)


def translate_messages(messages: list[object]) -> list[JSON]:
    """Translate the message list in order, linking tool results to the calls they answer."""
    out: list[JSON] = []
    pending: list[list[str]] = []  # [id, name] of calls of the last assistant turn not yet answered
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ClientRequestError(f"messages[{i}] must be an object")
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise ClientRequestError(f"messages[{i}].role must be a non-empty string")
        role = role.lower()  # Ollama lower-cases roles; OpenAI only knows lower-case ones
        content = _optional_str_field(msg, "content", i)
        images = image_list(msg.get("images"), f"messages[{i}].images")
        if role == "assistant" and msg.get("tool_calls"):
            calls = _assistant_calls(msg["tool_calls"], i)
            pending = [[c["id"], c["function"]["name"]] for c in calls]
            out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        elif role == "tool":
            out.append(_tool_message(msg, content, pending, i))
        else:
            if role == "assistant":
                pending = []
            out.append(with_images({"role": role, "content": content}, images))
    return out


def _optional_str_field(msg: JSON, name: str, i: int) -> str:
    """A message's string field that may be missing or null."""
    value = msg.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClientRequestError(f"messages[{i}].{name} must be a string")
    return value


def _assistant_calls(tool_calls: object, i: int) -> list[JSON]:
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


def _tool_message(msg: JSON, content: str, pending: list[list[str]], i: int) -> JSON:
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


def image_list(images: object, where: str) -> list[str]:
    """A list of base64 strings (or data: URIs); empty values are skipped like the clients do."""
    if images is None:
        return []
    if not isinstance(images, list):
        raise ClientRequestError(f"{where} must be a list of base64 strings")
    for image in images:
        if not isinstance(image, str):
            raise ClientRequestError(f"{where} must be a list of base64 strings")
    return [image for image in images if image]


def with_images(message: JSON, images: list[str]) -> JSON:
    """Turn content into text + image_url parts when the message carries images."""
    if not images:
        return message
    parts: list[JSON] = [{"type": "text", "text": message["content"]}]
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
