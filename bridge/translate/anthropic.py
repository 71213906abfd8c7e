"""Anthropic Messages API (``/v1/messages``) <-> OpenAI chat completions. Pure: plain dicts in and out.

* :func:`messages_request`: a Messages request -> a chat.completions body (400 on what is invalid or
  cannot be expressed, with Anthropic-style paths such as ``messages.1.content.0``).
* :func:`messages_response`: a chat.completion -> one Anthropic ``message``.
* ``anthropic_stream.MessagesStream`` (beside this module) does the same for streams.
* :func:`count_tokens`: the documented estimate behind ``/v1/messages/count_tokens``.
* :func:`error_body`: Anthropic's error envelope for a status.

Ids, the model name echoed back and the reasoning control are handed in by the caller.
"""

from __future__ import annotations

import json
import math

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.responses import first_choice, parse_arguments, reasoning_text

__all__ = [
    "count_tokens",
    "error_body",
    "error_type",
    "keeps_thinking",
    "messages_request",
    "messages_response",
    "reasoning_controls",
    "stop_reason",
    "stop_sequences",
    "usage_body",
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                 "content_filter": "refusal"}
# Extended-thinking budgets -> the effort levels chat-completions backends understand.
_BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))
_EFFORTS = ("low", "medium", "high")
# count_tokens: characters per token, and what each message and tool costs on top of its text.
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
_IMAGE_TOKENS = 1600  # a 1092x1092 image by Anthropic's published (w*h)/750 rule


# ---------------------------------------------------------------------------------------------
# requests


def messages_request(body: dict, backend_model: str, *, stream: bool, think_control: str) -> dict:
    """Translate a Messages API body into an OpenAI /v1/chat/completions body."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ClientRequestError("max_tokens: field required (an integer of at least 1)")
    if body.get("mcp_servers"):
        raise ClientRequestError("mcp_servers: MCP connectors are not supported by this server")
    out: dict = {"model": backend_model, "messages": _system(body.get("system")) + _messages(body.get("messages")),
                 "max_tokens": max_tokens, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ClientRequestError(f"{name}: must be a number")
            out[name] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ClientRequestError("stop_sequences: must be a list of strings")
        if [s for s in stop if s]:
            out["stop"] = [s for s in stop if s]
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    out.update(_tool_choice(body.get("tool_choice"), bool(tools)))
    out.update(_thinking(body.get("thinking"), think_control))
    response_format = _output_format(body)
    if response_format:
        out["response_format"] = response_format
    user = _metadata_user(body.get("metadata"))
    if user:
        out["user"] = user
    return out


def stop_sequences(body: dict) -> tuple[str, ...]:
    """The request's stop sequences (to recognise which one ended a response)."""
    stop = body.get("stop_sequences") if isinstance(body, dict) else None
    return tuple(s for s in stop if isinstance(s, str) and s) if isinstance(stop, list) else ()


def keeps_thinking(body: dict) -> bool:
    """False only when the client turned thinking off: then reasoning text is dropped."""
    thinking = body.get("thinking") if isinstance(body, dict) else None
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


def _system(system: object) -> list[dict]:
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


def _messages(messages: object) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ClientRequestError("messages: field required (a non-empty list)")
    out: list[dict] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ClientRequestError(f"messages.{i}: must be an object")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise ClientRequestError(f"messages.{i}.role: must be 'user' or 'assistant'")
        blocks = _blocks(msg.get("content"), f"messages.{i}.content")
        out.extend(_assistant(blocks, i) if role == "assistant" else _user(blocks, i))
    return out


def _blocks(content: object, where: str) -> list[dict]:
    """Message content as a list of blocks (a plain string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ClientRequestError(f"{where}: must be a string or a list of content blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ClientRequestError(f"{where}.{j}: must be a content block with a type")
    return content


def _user(blocks: list[dict], i: int) -> list[dict]:
    """A user turn: tool results first (as tool messages, answering the previous turn), then the rest."""
    tool_messages: list[dict] = []
    parts: list[dict] = []
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


def _assistant(blocks: list[dict], i: int) -> list[dict]:
    """An assistant turn: its text, and its tool_use blocks as tool calls. Thinking is not sent back."""
    texts: list[str] = []
    calls: list[dict] = []
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
    message: dict = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_result(block: dict, where: str, images_out: list[dict]) -> dict:
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


def _text_of(block: dict, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise ClientRequestError(f"{where}.text: must be a string")
    return text


def _image(block: dict, where: str) -> dict:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise ClientRequestError(f"{where}.source: images must be base64 (with media_type) or url sources")


def _content(parts: list[dict]) -> str | list[dict]:
    """Text-only content as one string (what every backend takes), else the parts list."""
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _unsupported_block(kind: object, where: str) -> ClientRequestError:
    return ClientRequestError(f"{where}: content blocks of type {kind!r} are not supported by this server")


def _tools(tools: object) -> list[dict]:
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
        function: dict = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object, have_tools: bool) -> dict:
    if choice is None:
        return {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    out: dict = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str) and choice["name"]:
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise ClientRequestError("tool_choice: must be {type: auto|any|none} or {type: tool, name}")
    if not have_tools:
        return {}  # OpenAI rejects a tool_choice without tools; Anthropic treats it as nothing to call
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _thinking(thinking: object, control: str) -> dict:
    """``thinking`` -> the reasoning controls this backend understands (see THINK_CONTROL)."""
    if thinking is None:
        return {}
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return reasoning_controls(None, control)
    if kind == "adaptive":
        return reasoning_controls("medium", control)
    if kind != "enabled":
        raise ClientRequestError("thinking: must be {type: enabled, budget_tokens}, {type: adaptive} "
                                 "or {type: disabled}")
    budget = thinking.get("budget_tokens")
    effort = "high"
    if isinstance(budget, int) and not isinstance(budget, bool):
        effort = next((name for limit, name in _BUDGET_EFFORTS if budget < limit), "high")
    return reasoning_controls(effort, control)


def _output_format(body: dict) -> dict | None:
    """Structured outputs: ``output_config.format`` (or the older beta ``output_format``) with a
    JSON schema -> ``response_format`` json_schema. ``output_config.effort`` is not mapped."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise ClientRequestError("output_config: must be an object")
    fmt = (config or {}).get("format") or body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise ClientRequestError("output_config.format: must be {type: json_schema, schema: {...}}")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def reasoning_controls(effort: str | None, control: str) -> dict:
    """Reasoning on at ``effort`` (low/medium/high), or off (None), as THINK_CONTROL spells it:
    ``reasoning_effort`` (OpenAI, vLLM), ``chat_template_kwargs`` (llama.cpp, Qwen), both, or off."""
    if effort is not None and effort not in _EFFORTS:
        raise ValueError(f"effort must be one of {_EFFORTS} or None, not {effort!r}")
    out: dict = {}
    if control in ("reasoning_effort", "both"):
        out["reasoning_effort"] = effort or "none"
    if control in ("chat_template_kwargs", "both"):
        out["chat_template_kwargs"] = {"enable_thinking": effort is not None}
    return out


def _metadata_user(metadata: object) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ClientRequestError("metadata: must be an object")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise ClientRequestError("metadata.user_id: must be a string")
    return user or None


# ---------------------------------------------------------------------------------------------
# responses


def messages_response(resp: dict, *, model: str, message_id: str, stop: tuple[str, ...] = (),
                      keep_thinking: bool = True) -> dict:
    """A non-stream chat.completion -> one Anthropic ``message``."""
    choice = first_choice(resp)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict] = []
    thinking = reasoning_text(message)
    if thinking and keep_thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = _message_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UpstreamProtocolError("backend tool call has no function name")
        call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else f"toolu_{message_id}_{k}"
        content.append({"type": "tool_use", "id": call_id, "name": fn["name"],
                        "input": parse_arguments(fn.get("arguments"), fn["name"])})
    if not content:
        content.append({"type": "text", "text": ""})
    reason, sequence = stop_reason(choice, stop, has_tool_calls=bool(calls))
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage_body(usage.get("prompt_tokens"), usage.get("completion_tokens"), usage, default=0)}


def stop_reason(choice: dict, stop: tuple[str, ...] = (), *, has_tool_calls: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a choice's finish_reason.

    A stop sequence is recognised only when the backend names the one it matched (vLLM's
    ``stop_reason``, SGLang's ``matched_stop``); otherwise a ``stop`` is ``end_turn``."""
    finish = choice.get("finish_reason")
    if finish in _STOP_REASONS:
        return _STOP_REASONS[finish], None
    if has_tool_calls:
        return "tool_use", None
    for key in ("stop_reason", "matched_stop"):
        matched = choice.get(key)
        if isinstance(matched, str) and matched in stop:
            return "stop_sequence", matched
    return "end_turn", None


def usage_body(prompt: object, completion: object, usage: dict, *, default: int | None) -> dict:
    """Anthropic ``usage`` from backend counts; ``input_tokens`` left out when unknown and no default."""
    out: dict = {}
    count = _count(prompt)
    if count is not None or default is not None:
        out["input_tokens"] = count if count is not None else default
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is not None:
        out["cache_read_input_tokens"] = cached
    count = _count(completion)
    out["output_tokens"] = count if count is not None else (default or 0)
    return out


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return max(0, int(value))


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# ---------------------------------------------------------------------------------------------
# count_tokens and errors


def count_tokens(body: dict) -> int:
    """An estimate of a Messages request's input tokens, without calling any tokenizer.

    One token per 4 characters (rounded up) of every text the model would read: the system prompt,
    text blocks, tool_use inputs and tool_result contents as JSON, and each tool's name,
    description and input_schema as JSON; plus 4 tokens per message and 1,600 per image.
    """
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    openai_like = _system(body.get("system")) + _messages(body.get("messages"))
    chars = 0
    images = 0
    for message in openai_like:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    chars += len(part["text"])
                else:
                    images += 1
        for call in message.get("tool_calls", ()):
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    for tool in _tools(body.get("tools")):
        chars += len(json.dumps(tool["function"], ensure_ascii=False))
    return math.ceil(chars / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD * len(openai_like) + _IMAGE_TOKENS * images


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str) -> dict:
    """Anthropic's error envelope: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": error_type(status), "message": message or f"HTTP {status}"}}
