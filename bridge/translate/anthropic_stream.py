"""Anthropic Messages API streams: chat.completion.chunk events -> Anthropic stream events. Pure.

``message_start``, ``ping``, then per content block ``content_block_start`` / ``content_block_delta``
(``text_delta``, ``thinking_delta``, ``input_json_delta`` with the backend's argument fragments) /
``content_block_stop``, then ``message_delta`` (stop reason, usage) and ``message_stop``; or one
``error`` event when the backend fails (see :meth:`MessagesStream.error`).
"""

from __future__ import annotations

import json
import logging
from typing import TypedDict

from bridge.errors import UpstreamProtocolError
from bridge.translate.anthropic_answer import error_body, stop_reason, token_count, usage_body
from bridge.translate.completion import error_message, reasoning_text, stream_choice
from bridge.translate.json_types import JSON, Event

__all__ = ["MessagesStream"]

log = logging.getLogger(__name__)


class _Block(TypedDict):
    """The content block being streamed."""

    kind: str  # "text", "thinking" or "tool"
    index: int  # the Anthropic block index
    tool: int | None  # the backend's tool-call index of a tool block


class _Tool(TypedDict):
    """One backend tool call, held or streamed as a tool_use block."""

    id: str | None
    name: str | None
    args: list[str]  # argument fragments, in order
    block: int | None  # its block index once opened
    closed: bool


class MessagesStream:
    """chat.completion.chunk events -> Anthropic stream events, one block open at a time.

    Call :meth:`start` once, :meth:`feed` per backend event, then :meth:`finish` (or emit
    :meth:`error` instead when the backend failed). Anthropic blocks never interleave, so when a
    backend interleaves parallel tool calls, a call is streamed live while it is the open block
    and the others are held until its arguments are a complete JSON value (or the end).
    """

    def __init__(self, *, message_id: str, model: str, stop: tuple[str, ...] = (), keep_thinking: bool = True) -> None:
        self._id = message_id
        self._model = model
        self._stop = stop
        self._keep_thinking = keep_thinking
        self._next_index = 0
        self._open: _Block | None = None
        self._tools: dict[int, _Tool] = {}      # by backend index
        self._waiting: list[int] = []           # tools held while another one is open
        self._choice: JSON = {}
        self._saw_calls = False
        self._usage: JSON = {}
        self._prompt: int | None = None
        self._completion: int | None = None
        self.finish_reason: str | None = None
        self.output_events = 0                  # deltas emitted (a fallback token count)

    @property
    def usage(self) -> tuple[int | None, int | None]:
        return self._prompt, self._completion

    def start(self) -> list[Event]:
        message: JSON = {"id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
                         "stop_reason": None, "stop_sequence": None,
                         "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def feed(self, event: JSON) -> list[Event]:
        """One parsed backend SSE object -> zero or more Anthropic events."""
        if not isinstance(event, dict):
            raise UpstreamProtocolError("backend stream event is not a JSON object")
        message = error_message(event)
        if message is not None:
            raise UpstreamProtocolError(message)
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
            self._prompt = token_count(usage.get("prompt_tokens"))
            self._completion = token_count(usage.get("completion_tokens"))
        choice = stream_choice(event)
        if choice is None:
            return []
        delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
        out: list[Event] = []
        thinking = reasoning_text(delta)
        if thinking and self._keep_thinking:
            out += self._append("thinking", {"type": "thinking_delta", "thinking": thinking})
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._append("text", {"type": "text_delta", "text": content})
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    out += self._tool_fragment(call, position)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            self._choice = choice
        return out

    def finish(self) -> list[Event]:
        """Close what is open, flush held tool calls, then message_delta and message_stop."""
        out = self._close()
        for index in self._waiting:
            out += self._open_tool(index)
            out += self._close()
        self._waiting = []
        reason, sequence = stop_reason({**self._choice, "finish_reason": self.finish_reason}, self._stop,
                                       has_tool_calls=self._saw_calls)
        usage = usage_body(self._prompt, self._completion if self._completion is not None else self.output_events,
                       self._usage, default=None)
        out.append(("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                      "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    @staticmethod
    def error(message: str, status: int = 500) -> Event:
        """The ``error`` event a failed stream ends with."""
        return "error", error_body(status, message)

    # -- blocks --------------------------------------------------------------------------------
    def _append(self, kind: str, delta: JSON) -> list[Event]:
        out: list[Event] = []
        if self._open is None or self._open["kind"] != kind:
            out += self._close()
            block = {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": "",
                                                                            "signature": ""}
            out.append(self._start_block(kind, block))
        out.append(self._delta(delta))
        return out

    def _tool_fragment(self, call: JSON, position: int) -> list[Event]:
        index = call["index"] if isinstance(call.get("index"), int) else position
        tool = self._tools.setdefault(index, {"id": None, "name": None, "args": [], "block": None, "closed": False})
        self._saw_calls = True
        fn = call["function"] if isinstance(call.get("function"), dict) else {}
        if isinstance(call.get("id"), str) and call["id"] and tool["id"] is None:
            tool["id"] = call["id"]
        if isinstance(fn.get("name"), str) and fn["name"] and tool["name"] is None:
            tool["name"] = fn["name"]
        fragment = fn["arguments"] if isinstance(fn.get("arguments"), str) else ""
        if tool["closed"]:
            if fragment.strip():  # cannot happen after a complete JSON value; never silently
                log.warning("tool call %s: arguments arrived after its block closed; dropped", index)
            return []
        if fragment:
            tool["args"].append(fragment)
        out: list[Event] = []
        if self._open is not None and self._open.get("tool") == index:
            if fragment:
                out.append(self._delta({"type": "input_json_delta", "partial_json": fragment}))
        elif tool["block"] is None:
            if index not in self._waiting:
                self._waiting.append(index)
        out += self._advance()
        return out

    def _advance(self) -> list[Event]:
        """Open the next held tool call once nothing unfinished is in the way."""
        out: list[Event] = []
        while self._waiting and self._tools[self._waiting[0]]["name"] is not None:
            current = self._open.get("tool") if self._open else None
            if current is not None and not _complete_json("".join(self._tools[current]["args"])):
                break
            out += self._close()
            out += self._open_tool(self._waiting.pop(0))
        return out

    def _open_tool(self, index: int) -> list[Event]:
        tool = self._tools[index]
        call_id = tool["id"] or f"toolu_{self._id}_{index}"
        out = [self._start_block("tool", {"type": "tool_use", "id": call_id, "name": tool["name"] or "",
                                          "input": {}}, tool=index)]
        assert self._open is not None  # just opened
        tool["block"] = self._open["index"]
        if tool["args"]:
            out.append(self._delta({"type": "input_json_delta", "partial_json": "".join(tool["args"])}))
        return out

    def _start_block(self, kind: str, block: JSON, tool: int | None = None) -> Event:
        self._open = {"kind": kind, "index": self._next_index, "tool": tool}
        self._next_index += 1
        return "content_block_start", {"type": "content_block_start", "index": self._open["index"],
                                       "content_block": block}

    def _delta(self, delta: JSON) -> Event:
        self.output_events += 1
        assert self._open is not None  # deltas only go to an open block
        return "content_block_delta", {"type": "content_block_delta", "index": self._open["index"], "delta": delta}

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index, tool = self._open["index"], self._open.get("tool")
        if tool is not None:
            self._tools[tool]["closed"] = True
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]


def _complete_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
