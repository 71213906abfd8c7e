"""OpenAI Responses API (``/v1/responses``) <-> chat completions, for backends without it. Pure.

(Not to be confused with ``translate/responses.py``, the Ollama response translator.)

* :func:`responses_request`: a Responses request -> a chat.completions body; stateful features
  (``previous_response_id``, ``conversation``, item references, background mode) and hosted tools
  are refused with a 400 that says why.
* :func:`response_object`: the ``response`` skeleton echoed in every answer (ids and clock handed in).
* :func:`responses_response`: a chat.completion -> a completed (or incomplete) ``response``.
* :class:`ResponsesStream`: chat.completion.chunk events -> the Responses stream events, each with
  its ``sequence_number``; :meth:`ResponsesStream.failed` for a backend that fails mid-way.
"""

from __future__ import annotations

import json
import math

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.anthropic import reasoning_controls
from bridge.translate.responses import reasoning_text
from bridge.translate.stream import error_message, stream_choice

__all__ = ["ResponsesStream", "response_object", "responses_request", "responses_response"]

_EFFORTS = {"none": None, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_STATELESS = ("the bridge keeps no state between requests: send the whole conversation in 'input' "
              "(previous output items included) instead")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}

Event = tuple[str, dict]


# ---------------------------------------------------------------------------------------------
# requests


def responses_request(body: dict, backend_model: str, *, stream: bool, think_control: str) -> dict:
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
    out: dict = {"model": backend_model, "messages": messages, "stream": stream}
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


def _instructions(instructions: object) -> list[dict]:
    if instructions is None or instructions == "":
        return []
    if not isinstance(instructions, str):
        raise ClientRequestError("'instructions' must be a string")
    return [{"role": "system", "content": instructions}]


def _input(items: object) -> list[dict]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise ClientRequestError("'input' must be a string or a list of input items")
    out: list[dict] = []
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


def _message(item: dict, where: str) -> dict:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise ClientRequestError(f"{where}.role must be one of user, assistant, system, developer")
    role = "system" if role == "developer" else role  # not every backend knows "developer"
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise ClientRequestError(f"{where}.content must be a string or a list of content parts")
    parts: list[dict] = []
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
            image: dict = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise ClientRequestError(f"{here}: content parts of type {kind!r} are not supported here")
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _function_call(item: dict, where: str, out: list[dict]) -> None:
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


def _function_output(item: dict, where: str) -> dict:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise ClientRequestError(f"{where}.call_id must be a non-empty string")
    if isinstance(output, list):
        texts = [p.get("text") for p in output if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if len(texts) != len(output):
            raise ClientRequestError(f"{where}.output: only text parts are supported in function outputs")
        output = "".join(texts)
    if not isinstance(output, str):
        raise ClientRequestError(f"{where}.output must be a string")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _tools(tools: object) -> list[dict]:
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
        function: dict = {"name": tool["name"],
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


def _text_format(text: object) -> dict | None:
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
        schema: dict = {"name": fmt.get("name") if isinstance(fmt.get("name"), str) else "response",
                        "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise ClientRequestError("text.format.type must be text, json_object or json_schema")


def _reasoning(reasoning: object, control: str) -> dict:
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


# ---------------------------------------------------------------------------------------------
# responses


def response_object(body: dict, *, response_id: str, created_at: int, model: str) -> dict:
    """The ``response`` skeleton (status in_progress, no output) echoing the request's settings."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": "in_progress",
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "store": False,  # nothing is stored, whatever the request said
        "temperature": body.get("temperature"), "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
        "top_p": body.get("top_p"), "truncation": "disabled", "usage": None,
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
    }


def responses_response(resp: dict, *, base: dict, keep_reasoning: bool = True) -> dict:
    """A non-stream chat.completion -> the completed (or incomplete) ``response``."""
    if not isinstance(resp, dict):
        raise UpstreamProtocolError("backend response is not a JSON object")
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("backend response has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    ids = _Ids(base["id"])
    output: list[dict] = []
    thinking = reasoning_text(message)
    if thinking and keep_reasoning:
        output.append(_reasoning_item(ids.next("rs"), thinking, "completed"))
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(content, str) and content:
        output.append(_message_item(ids.next("msg"), content, "completed"))
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UpstreamProtocolError("backend tool call has no function name")
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        item_id = ids.next("fc")
        call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else f"call_{item_id}"
        output.append(_call_item(item_id, call_id, fn["name"], arguments, "completed"))
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    return _final(base, output, choice.get("finish_reason"), usage)


def _final(base: dict, output: list[dict], finish: object, usage: dict) -> dict:
    reason = _INCOMPLETE.get(finish) if isinstance(finish, str) else None
    return {**base, "status": "incomplete" if reason else "completed",
            "incomplete_details": {"reason": reason} if reason else None,
            "output": output, "usage": _usage(usage)}


def _usage(usage: dict) -> dict:
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    out_details = usage.get("completion_tokens_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": _count(details.get("cached_tokens"))},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": _count(out_details.get("reasoning_tokens"))},
            "total_tokens": prompt + completion}


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, int(value))


def _message_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [_text_part(text)] if status != "in_progress" else []}


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


class _Ids:
    """Item ids derived from the response id: ``msg_<hex>_0``, ``fc_<hex>_1``..."""

    def __init__(self, response_id: str) -> None:
        self._stem = response_id.split("_", 1)[-1]
        self._n = 0

    def next(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._stem}_{self._n - 1}"


# ---------------------------------------------------------------------------------------------
# streams


class ResponsesStream:
    """chat.completion.chunk events -> Responses stream events with consecutive sequence numbers.

    Call :meth:`start` once, :meth:`feed` per backend event, then :meth:`finish`, or
    :meth:`failed` when the backend broke off. Output items open as their first delta arrives
    (reasoning, message text, each function call by its backend index) and are all closed, in
    output order, before ``response.completed``.
    """

    def __init__(self, *, base: dict, keep_reasoning: bool = True) -> None:
        self._base = base
        self._keep_reasoning = keep_reasoning
        self._ids = _Ids(base["id"])
        self._seq = 0
        self._items: list[dict] = []        # {"item", "text", "open", "kind"} in output order
        self._text: dict | None = None      # the open message or reasoning entry
        self._calls: dict[int, dict] = {}   # backend tool index -> entry
        self._usage: dict = {}
        self.finish_reason: str | None = None
        self.output_events = 0

    @property
    def usage(self) -> tuple[int | None, int | None]:
        if not self._usage:
            return None, None
        return _count(self._usage.get("prompt_tokens")), _count(self._usage.get("completion_tokens"))

    def start(self) -> list[Event]:
        snapshot = {**self._base, "output": []}
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def feed(self, event: dict) -> list[Event]:
        if not isinstance(event, dict):
            raise UpstreamProtocolError("backend stream event is not a JSON object")
        message = error_message(event)
        if message is not None:
            raise UpstreamProtocolError(message)
        if isinstance(event.get("usage"), dict):
            self._usage = event["usage"]
        choice = stream_choice(event)
        if choice is None:
            return []
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        out: list[Event] = []
        thinking = reasoning_text(delta)
        if thinking and self._keep_reasoning:
            out += self._text_delta("reasoning", thinking)
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._text_delta("message", content)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    out += self._call_delta(call, position)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
        return out

    def finish(self) -> list[Event]:
        """Close every open item, then ``response.completed`` (or ``response.incomplete``)."""
        out: list[Event] = []
        for entry in self._items:
            out += self._close(entry)
        final = _final(self._base, [e["item"] for e in self._items], self.finish_reason, self._usage)
        name = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(name, response=final))
        return out

    def failed(self, message: str, code: str = "server_error") -> Event:
        """``response.failed``: the stream ends here, with what was produced so far."""
        snapshot = {**self._base, "status": "failed", "error": {"code": code, "message": message},
                    "output": [e["item"] for e in self._items]}
        return self._event("response.failed", response=snapshot)

    # -- items ---------------------------------------------------------------------------------
    def _event(self, kind: str, /, **fields) -> Event:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return kind, data

    def _add(self, kind: str, item: dict) -> tuple[dict, list[Event]]:
        entry = {"kind": kind, "item": item, "text": [], "open": True, "index": len(self._items)}
        self._items.append(entry)
        out = [self._event("response.output_item.added", output_index=entry["index"], item=dict(item))]
        if kind in ("message", "reasoning"):
            part = _text_part("") if kind == "message" else {"type": "reasoning_text", "text": ""}
            out.append(self._event("response.content_part.added", item_id=item["id"], output_index=entry["index"],
                                   content_index=0, part=part))
        return entry, out

    def _text_delta(self, kind: str, text: str) -> list[Event]:
        out: list[Event] = []
        if self._text is None or self._text["kind"] != kind:
            if self._text is not None:
                out += self._close(self._text)
            item = (_message_item(self._ids.next("msg"), "", "in_progress") if kind == "message"
                    else _reasoning_item(self._ids.next("rs"), "", "in_progress"))
            self._text, added = self._add(kind, item)
            out += added
        entry = self._text
        entry["text"].append(text)
        self.output_events += 1
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        extra = {"logprobs": []} if kind == "message" else {}
        out.append(self._event(name, item_id=entry["item"]["id"], output_index=entry["index"], content_index=0,
                               delta=text, **extra))
        return out

    def _call_delta(self, call: dict, position: int) -> list[Event]:
        index = call.get("index") if isinstance(call.get("index"), int) else position
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        out: list[Event] = []
        entry = self._calls.get(index)
        if entry is None:
            if self._text is not None:
                out += self._close(self._text)
            item_id = self._ids.next("fc")
            call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else f"call_{item_id}"
            name = fn.get("name") if isinstance(fn.get("name"), str) else ""
            entry, added = self._add("function_call", _call_item(item_id, call_id, name, "", "in_progress"))
            self._calls[index] = entry
            out += added
        elif not entry["item"]["name"] and isinstance(fn.get("name"), str):
            entry["item"]["name"] = fn["name"]  # a backend that names the call after its first fragment
        fragment = fn.get("arguments") if isinstance(fn.get("arguments"), str) else ""
        if fragment and entry["open"]:
            entry["text"].append(fragment)
            self.output_events += 1
            out.append(self._event("response.function_call_arguments.delta", item_id=entry["item"]["id"],
                                   output_index=entry["index"], delta=fragment))
        return out

    def _close(self, entry: dict) -> list[Event]:
        if not entry["open"]:
            return []
        entry["open"] = False
        if entry is self._text:
            self._text = None
        item, index, text = entry["item"], entry["index"], "".join(entry["text"])
        out: list[Event] = []
        if entry["kind"] == "function_call":
            entry["item"] = {**item, "arguments": text, "status": "completed"}
            out.append(self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                   name=item["name"], arguments=text))
        elif entry["kind"] == "message":
            entry["item"] = _message_item(item["id"], text, "completed")
            out.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=text, logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part=_text_part(text)))
        else:
            entry["item"] = _reasoning_item(item["id"], text, "completed")
            out.append(self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=text))
            out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part={"type": "reasoning_text", "text": text}))
        out.append(self._event("response.output_item.done", output_index=index, item=entry["item"]))
        return out
