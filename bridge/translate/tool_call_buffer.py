"""Streamed tool-call fragments -> whole Ollama tool calls, once the backend has sent them all."""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import parse_arguments
from bridge.translate.json_types import JSON

__all__ = ["ToolCallBuffer"]

# The name this warning was always logged under (log lines carry it; filters may match on it).
log = logging.getLogger("bridge.translate.stream")


class _Slot(TypedDict):
    """One call being assembled."""

    id: str | None
    index: int | None  # the backend's index, None when it sent none
    name: str
    text: list[str]  # argument fragments, in order
    object: Any  # arguments sent whole (not as a string), else None


class ToolCallBuffer:
    """Accumulates streamed tool-call deltas by index (else id, else arrival order)."""

    def __init__(self) -> None:
        self._calls: list[_Slot] = []
        self._by_index: dict[int, _Slot] = {}
        self._by_id: dict[str, _Slot] = {}

    def add(self, deltas: object) -> None:
        """Merge one delta's tool_calls list."""
        if deltas is None:
            return
        if not isinstance(deltas, list):
            raise UpstreamProtocolError("backend stream tool_calls is not a list")
        for delta in deltas:
            if not isinstance(delta, dict):
                raise UpstreamProtocolError("backend stream tool call is not an object")
            self._merge(self._slot(delta), delta)

    def flush(self) -> list[JSON]:
        """The complete calls as Ollama tool calls; the buffer starts empty again."""
        calls, self._calls, self._by_index, self._by_id = self._calls, [], {}, {}
        # The backend's index is the call order; calls without one keep their arrival order.
        calls.sort(key=lambda slot: (slot["index"] is None, slot["index"] or 0))
        out: list[JSON] = []
        for slot in calls:
            if not slot["name"]:
                log.warning("backend streamed a tool call without a function name; dropped")
                continue
            entry: JSON = {"id": slot["id"]} if slot["id"] else {}
            raw = slot["object"] if slot["object"] is not None else "".join(slot["text"])
            entry["function"] = {
                "index": len(out),
                "name": slot["name"],
                "arguments": parse_arguments(raw, slot["name"]),
            }
            out.append(entry)
        return out

    def _slot(self, delta: JSON) -> _Slot:
        """Find or open the call this delta belongs to."""
        index = delta.get("index")
        call_id = delta.get("id") if isinstance(delta.get("id"), str) and delta.get("id") else None
        if isinstance(index, int) and not isinstance(index, bool):
            slot = self._by_index.get(index)
            # A different id under a reused index means a new call (seen from some servers).
            if slot is not None and not (call_id and slot["id"] and slot["id"] != call_id):
                return slot
            slot = self._open(call_id, index)
            self._by_index[index] = slot
            return slot
        if call_id:
            return self._by_id.get(call_id) or self._open(call_id)
        fn = delta["function"] if isinstance(delta.get("function"), dict) else {}
        # No index and no id: a named delta starts a call, a bare fragment continues the last one.
        if self._calls and not fn.get("name"):
            return self._calls[-1]
        return self._open(None)

    def _open(self, call_id: str | None, index: int | None = None) -> _Slot:
        """A new, empty call."""
        slot: _Slot = {"id": call_id, "index": index, "name": "", "text": [], "object": None}
        self._calls.append(slot)
        if call_id:
            self._by_id[call_id] = slot
        return slot

    def _merge(self, slot: _Slot, delta: JSON) -> None:
        """Add this delta's id, name and arguments (string fragments or a whole object)."""
        call_id = delta.get("id")
        if isinstance(call_id, str) and call_id and not slot["id"]:
            slot["id"] = call_id
            self._by_id[call_id] = slot
        fn = delta.get("function")
        if not isinstance(fn, dict):
            return
        name = fn.get("name")
        if isinstance(name, str) and name and not slot["name"]:
            slot["name"] = name
        arguments = fn.get("arguments")
        if isinstance(arguments, str):
            slot["text"].append(arguments)
        elif arguments is not None:
            slot["object"] = arguments
