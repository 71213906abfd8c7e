"""OpenAI Responses API (``/v1/responses``) requests -> chat.completions bodies, for backends without it.

(Not to be confused with ``translate/responses.py``, the Ollama response translator.)

:func:`responses_request` translates a request; stateful features (``previous_response_id``,
``conversation``, item references, background mode) and hosted tools are refused with a 400 that
says why. The answers are ``responses_api_answer`` (and ``responses_api_stream`` for streams); the
names the routes use are re-exported here.
"""

from __future__ import annotations

import math

from bridge.errors import ClientRequestError
from bridge.translate.json_types import JSON
from bridge.translate.reasoning import reasoning_controls
from bridge.translate.responses_api_answer import response_object as response_object
from bridge.translate.responses_api_answer import responses_response as responses_response
from bridge.translate.responses_api_stream import ResponsesStream as ResponsesStream

__all__ = [
    "ResponsesStream",  # re-exported from responses_api_stream (the routes import it from here)
    "response_object",  # re-exported from responses_api_answer
    "responses_request",
    "responses_response",  # re-exported from responses_api_answer
]

_EFFORTS = {"none": None, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_STATELESS = ("the bridge keeps no state between requests: send the whole conversation in 'input' "
              "(previous output items included) instead")


def responses_request(body: JSON, backend_model: str, *, stream: bool, think_control: str) -> JSON:
    """Translate a Responses API body into an OpenAI /v1/chat/completions body."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    for name in ("previous_response_id", "conversation"):
        if body.get(name) not in (None, ""):
            raise ClientRequestError(f"'{name}' is not supported: {_STATELESS}")
    if body.get("background") is True:
        raise ClientRequestError("'background' mode is not supported: the bridge keeps no state between requests")
    if body.get("prompt") is not None:
        raise ClientRequestError("'prompt' (stored prompt templates) is not supported by this server")
    messages = _instructions(body.get("instructions")) + _input(body.get("input"))
    if not messages:
        raise ClientRequestError("'input' must not be empty")
    out: JSON = {"model": backend_model, "messages": messages, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ClientRequestError("'max_output_tokens' must be a positive integer")
        out["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ClientRequestError(f"'{name}' must be a number")
            out[name] = value
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    response_format = _text_format(body.get("text"))
    if response_format:
        out["response_format"] = response_format
    out.update(_reasoning(body.get("reasoning"), think_control))
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["user"] = user
    return out


def _instructions(instructions: object) -> list[JSON]:
    if instructions is None or instructions == "":
        return []
    if not isinstance(instructions, str):
        raise ClientRequestError("'instructions' must be a string")
    return [{"role": "system", "content": instructions}]


def _input(items: object) -> list[JSON]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise ClientRequestError("'input' must be a string or a list of input items")
    out: list[JSON] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise ClientRequestError(f"{where} must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            _function_call(item, where, out)
        elif kind == "function_call_output":
            out.append(_function_output(item, where))
        elif kind == "reasoning":
            continue  # backends cannot take reasoning back
        elif kind == "item_reference":
            raise ClientRequestError(f"{where}: item references are not supported: {_STATELESS}")
        else:
            raise ClientRequestError(f"{where}: input items of type {kind!r} are not supported by this server")
    return out


def _message(item: JSON, where: str) -> JSON:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise ClientRequestError(f"{where}.role must be one of user, assistant, system, developer")
    role = "system" if role == "developer" else role  # not every backend knows "developer"
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise ClientRequestError(f"{where}.content must be a string or a list of content parts")
    parts: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        here = f"{where}.content[{j}]"
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise ClientRequestError(f"{here}.text must be a string")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image" and role == "user":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise ClientRequestError(f"{here}: images need an image_url (file ids are not supported)")
            image: JSON = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise ClientRequestError(f"{here}: content parts of type {kind!r} are not supported here")
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _function_call(item: JSON, where: str, out: list[JSON]) -> None:
    """A function_call item joins the assistant turn before it (one message carries all its calls)."""
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "{}")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ClientRequestError(f"{where}: function_call needs a string call_id and name")
    if not isinstance(arguments, str):
        raise ClientRequestError(f"{where}.arguments must be a JSON string")
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if out and out[-1]["role"] == "assistant":
        out[-1].setdefault("tool_calls", []).append(call)
        if out[-1].get("content") == "":
            out[-1]["content"] = None
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: JSON, where: str) -> JSON:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise ClientRequestError(f"{where}.call_id must be a non-empty string")
    if isinstance(output, list):
        texts = [p["text"] for p in output if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if len(texts) != len(output):
            raise ClientRequestError(f"{where}.output: only text parts are supported in function outputs")
        output = "".join(texts)
    if not isinstance(output, str):
        raise ClientRequestError(f"{where}.output must be a string")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _tools(tools: object) -> list[JSON]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ClientRequestError("'tools' must be a list")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise ClientRequestError(f"tools[{i}]: tools of type {kind!r} are not supported by this server; "
                                     "only function tools")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ClientRequestError(f"tools[{i}].name must be a non-empty string")
        function: JSON = {"name": tool["name"],
                          "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object) -> object:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ClientRequestError("'tool_choice' must be auto, none, required or {type: function, name}")


def _text_format(text: object) -> JSON | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise ClientRequestError("'text' must be an object")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise ClientRequestError("text.format.schema must be an object")
        schema: JSON = {"name": fmt["name"] if isinstance(fmt.get("name"), str) else "response",
                        "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise ClientRequestError("text.format.type must be text, json_object or json_schema")


def _reasoning(reasoning: object, control: str) -> JSON:
    if reasoning is None:
        return {}
    if not isinstance(reasoning, dict):
        raise ClientRequestError("'reasoning' must be an object")
    effort = reasoning.get("effort")
    if effort is None:
        return {}
    if effort not in _EFFORTS:
        raise ClientRequestError(f"reasoning.effort must be one of {', '.join(_EFFORTS)}")
    return reasoning_controls(_EFFORTS[effort], control)
