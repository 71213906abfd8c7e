"""Responses API streams: chat.completion.chunk events -> the Responses stream events, each with its
``sequence_number``; ``response.failed`` for a backend that fails mid-way."""

from __future__ import annotations

from typing import TypedDict

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import error_message, reasoning_text, stream_choice
from bridge.translate.json_types import JSON, Event
from bridge.translate.responses_api_answer import (
    ItemIds,
    call_item,
    final_response,
    message_item,
    reasoning_item,
    text_part,
    usage_count,
)

__all__ = ["ResponsesStream"]


class _Entry(TypedDict):
    """One output item while it streams."""

    kind: str  # "message", "reasoning" or "function_call"
    item: JSON  # the output item; replaced by its completed form when closed
    text: list[str]  # its text or argument fragments so far
    open: bool
    index: int  # its output_index


class ResponsesStream:
    """chat.completion.chunk events -> Responses stream events with consecutive sequence numbers.

    Call :meth:`start` once, :meth:`feed` per backend event, then :meth:`finish`, or
    :meth:`failed` when the backend broke off. Output items open as their first delta arrives
    (reasoning, message text, each function call by its backend index) and are all closed, in
    output order, before ``response.completed``.
    """

    def __init__(self, *, base: JSON, keep_reasoning: bool = True) -> None:
        self._base = base
        self._keep_reasoning = keep_reasoning
        self._ids = ItemIds(base["id"])
        self._seq = 0
        self._items: list[_Entry] = []      # in output order
        self._text: _Entry | None = None    # the open message or reasoning entry
        self._calls: dict[int, _Entry] = {}  # backend tool index -> entry
        self._usage: JSON = {}
        self.finish_reason: str | None = None
        self.output_events = 0

    @property
    def usage(self) -> tuple[int | None, int | None]:
        if not self._usage:
            return None, None
        return usage_count(self._usage.get("prompt_tokens")), usage_count(self._usage.get("completion_tokens"))

    def start(self) -> list[Event]:
        snapshot = {**self._base, "output": []}
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def feed(self, event: JSON) -> list[Event]:
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
        delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
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
        final = final_response(self._base, [e["item"] for e in self._items], self.finish_reason, self._usage)
        name = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(name, response=final))
        return out

    def failed(self, message: str, code: str = "server_error") -> Event:
        """``response.failed``: the stream ends here, with what was produced so far."""
        snapshot = {**self._base, "status": "failed", "error": {"code": code, "message": message},
                    "output": [e["item"] for e in self._items]}
        return self._event("response.failed", response=snapshot)

    # -- items ---------------------------------------------------------------------------------
    def _event(self, kind: str, /, **fields: object) -> Event:
        data: JSON = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return kind, data

    def _add(self, kind: str, item: JSON) -> tuple[_Entry, list[Event]]:
        entry: _Entry = {"kind": kind, "item": item, "text": [], "open": True, "index": len(self._items)}
        self._items.append(entry)
        out = [self._event("response.output_item.added", output_index=entry["index"], item=dict(item))]
        if kind in ("message", "reasoning"):
            part = text_part("") if kind == "message" else {"type": "reasoning_text", "text": ""}
            out.append(self._event("response.content_part.added", item_id=item["id"], output_index=entry["index"],
                                   content_index=0, part=part))
        return entry, out

    def _text_delta(self, kind: str, text: str) -> list[Event]:
        out: list[Event] = []
        if self._text is None or self._text["kind"] != kind:
            if self._text is not None:
                out += self._close(self._text)
            item = (message_item(self._ids.next("msg"), "", "in_progress") if kind == "message"
                    else reasoning_item(self._ids.next("rs"), "", "in_progress"))
            self._text, added = self._add(kind, item)
            out += added
        entry = self._text
        entry["text"].append(text)
        self.output_events += 1
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        extra: JSON = {"logprobs": []} if kind == "message" else {}
        out.append(self._event(name, item_id=entry["item"]["id"], output_index=entry["index"], content_index=0,
                               delta=text, **extra))
        return out

    def _call_delta(self, call: JSON, position: int) -> list[Event]:
        index = call["index"] if isinstance(call.get("index"), int) else position
        fn = call["function"] if isinstance(call.get("function"), dict) else {}
        out: list[Event] = []
        entry = self._calls.get(index)
        if entry is None:
            if self._text is not None:
                out += self._close(self._text)
            item_id = self._ids.next("fc")
            call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else f"call_{item_id}"
            name = fn["name"] if isinstance(fn.get("name"), str) else ""
            entry, added = self._add("function_call", call_item(item_id, call_id, name, "", "in_progress"))
            self._calls[index] = entry
            out += added
        elif not entry["item"]["name"] and isinstance(fn.get("name"), str):
            entry["item"]["name"] = fn["name"]  # a backend that names the call after its first fragment
        fragment = fn["arguments"] if isinstance(fn.get("arguments"), str) else ""
        if fragment and entry["open"]:
            entry["text"].append(fragment)
            self.output_events += 1
            out.append(self._event("response.function_call_arguments.delta", item_id=entry["item"]["id"],
                                   output_index=entry["index"], delta=fragment))
        return out

    def _close(self, entry: _Entry) -> list[Event]:
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
            entry["item"] = message_item(item["id"], text, "completed")
            out.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=text, logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part=text_part(text)))
        else:
            entry["item"] = reasoning_item(item["id"], text, "completed")
            out.append(self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=text))
            out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part={"type": "reasoning_text", "text": text}))
        out.append(self._event("response.output_item.done", output_index=index, item=entry["item"]))
        return out
