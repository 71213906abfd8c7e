"""What the model reads in a Messages API request (system, messages with their content blocks,
tools) -> OpenAI chat messages and function tools; 400 with Anthropic-style paths such as
``messages.1.content.0`` for what is invalid or cannot be expressed."""

from __future__ import annotations

import json

from bridge.errors import ClientRequestError
from bridge.translate.json_types import JSON

__all__ = ["translate_messages", "translate_system", "translate_tools"]


def translate_system(system: object) -> list[JSON]:
    """``system`` (a string or text blocks) -> at most one system message."""
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise ClientRequestError("system: must be a string or a list of text blocks")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise ClientRequestError(f"system.{i}: must be a text block")
        texts.append(block["text"])
    return [{"role": "system", "content": "\n\n".join(texts)}]


def translate_messages(messages: object) -> list[JSON]:
    """The ``messages`` list -> OpenAI messages, in order (tool results become tool messages)."""
    if not isinstance(messages, list) or not messages:
        raise ClientRequestError("messages: field required (a non-empty list)")
    out: list[JSON] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ClientRequestError(f"messages.{i}: must be an object")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise ClientRequestError(f"messages.{i}.role: must be 'user' or 'assistant'")
        blocks = _blocks(msg.get("content"), f"messages.{i}.content")
        out.extend(_assistant(blocks, i) if role == "assistant" else _user(blocks, i))
    return out


def _blocks(content: object, where: str) -> list[JSON]:
    """Message content as a list of blocks (a plain string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ClientRequestError(f"{where}: must be a string or a list of content blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ClientRequestError(f"{where}.{j}: must be a content block with a type")
    return content


def _user(blocks: list[JSON], i: int) -> list[JSON]:
    """A user turn: tool results first (as tool messages, answering the previous turn), then the rest."""
    tool_messages: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block["type"]
        if kind == "tool_result":
            tool_messages.append(_tool_result(block, where, parts))
        elif kind == "text":
            parts.append({"type": "text", "text": _text_of(block, where)})
        elif kind == "image":
            parts.append(_image(block, where))
        else:
            raise _unsupported_block(kind, where)
    out = tool_messages
    if parts:
        out = out + [{"role": "user", "content": _content(parts)}]
    return out


def _assistant(blocks: list[JSON], i: int) -> list[JSON]:
    """An assistant turn: its text, and its tool_use blocks as tool calls. Thinking is not sent back."""
    texts: list[str] = []
    calls: list[JSON] = []
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text_of(block, where))
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise ClientRequestError(f"{where}: tool_use needs a string id and name")
            arguments = block.get("input", {})
            if not isinstance(arguments, dict):
                raise ClientRequestError(f"{where}.input: must be an object")
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # backends have no way to take reasoning back; Anthropic ignores old turns' too
        else:
            raise _unsupported_block(kind, where)
    message: JSON = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_result(block: JSON, where: str, images_out: list[JSON]) -> JSON:
    """A tool_result block -> a tool message; images in it follow in the user message (tools take text)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise ClientRequestError(f"{where}.tool_use_id: must be a non-empty string")
    content = block.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_text_of(part, f"{where}.content.{k}"))
            elif kind == "image":
                images_out.append(_image(part, f"{where}.content.{k}"))
            else:
                raise _unsupported_block(kind, f"{where}.content.{k}")
    elif content is not None:
        raise ClientRequestError(f"{where}.content: must be a string or a list of blocks")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _text_of(block: JSON, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise ClientRequestError(f"{where}.text: must be a string")
    return text


def _image(block: JSON, where: str) -> JSON:
    found = block.get("source")
    source: JSON = found if isinstance(found, dict) else {}
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise ClientRequestError(f"{where}.source: images must be base64 (with media_type) or url sources")


def _content(parts: list[JSON]) -> str | list[JSON]:
    """Text-only content as one string (what every backend takes), else the parts list."""
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _unsupported_block(kind: object, where: str) -> ClientRequestError:
    return ClientRequestError(f"{where}: content blocks of type {kind!r} are not supported by this server")


def translate_tools(tools: object) -> list[JSON]:
    """Custom tools (name, input_schema) -> OpenAI function tools; server tools are refused."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ClientRequestError("tools: must be a list")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ClientRequestError(f"tools.{i}: must be an object")
        if tool.get("type") not in (None, "custom"):
            raise ClientRequestError(f"tools.{i}: server tools (type {tool.get('type')!r}) are not supported "
                                     "by this server; only custom tools with an input_schema")
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise ClientRequestError(f"tools.{i}.name: must be a non-empty string")
        if not isinstance(schema, dict):
            raise ClientRequestError(f"tools.{i}.input_schema: must be an object")
        function: JSON = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out
