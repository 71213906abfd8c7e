"""Parameters the bridge adds to backend requests, and what to do when a backend rejects one.

The Ollama routes add fields the client never wrote: ``reasoning_effort`` / ``chat_template_kwargs``
(from ``think``) and ``stream_options`` (to get usage on streams). A backend that does not know one
(OpenAI for a non-reasoning model: 400 "Unrecognized request argument supplied: reasoning_effort")
would otherwise refuse every call of a framework that sends ``think: false`` by default. Pure: the
caller retries, remembers (:class:`DroppedParams`) and counts. See docs/ollama-fields.md.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable, Iterable

__all__ = [
    "ADDED_PARAMS",
    "THINKING_PARAMS",
    "DroppedParams",
    "Rejection",
    "rejected_param",
]

#: Every parameter the bridge may add on its own; the closed set of the Prometheus ``param`` label.
ADDED_PARAMS = ("reasoning_effort", "chat_template_kwargs", "stream_options")
#: The ones that carry ``think``.
THINKING_PARAMS = frozenset({"reasoning_effort", "chat_template_kwargs"})

_REJECTED = re.compile(
    r"unrecogni[sz]ed|unsupported|not supported|unknown|unexpected|not allowed|not permitted|"
    r"extra (?:inputs?|fields?|arguments?)|extra_forbidden|invalid|does not support|not a valid|"
    r"no such|cannot be used|can ?not be used|is not available",
    re.IGNORECASE,
)
# The parameter is known but this value is not (e.g. reasoning_effort "none" on a model that
# always reasons): dropping it is right for this call, but says nothing about the next one.
_VALUE_ONLY = re.compile(
    r"unsupported value|invalid value|not a valid value|supported values|must be one of|expected one of|"
    r"is not one of|permitted values|valid values",
    re.IGNORECASE,
)
# The backend says the model cannot think at all, without naming a field.
_NO_THINKING = re.compile(
    r"(?:does not|doesn't|do not) support (?:thinking|reasoning)|(?:thinking|reasoning) is not supported|"
    r"not a (?:thinking|reasoning) model|(?:thinking|reasoning) (?:is )?not (?:available|enabled) for",
    re.IGNORECASE,
)


class Rejection(tuple[str, bool]):
    """(param, value_only): which added parameter the backend refused and whether only its value."""

    __slots__ = ()

    def __new__(cls, param: str, value_only: bool) -> Rejection:
        return super().__new__(cls, (param, value_only))

    @property
    def param(self) -> str:
        return self[0]

    @property
    def value_only(self) -> bool:
        return self[1]


def rejected_param(status: int, message: object, sent: Iterable[str]) -> Rejection | None:
    """The bridge-added parameter (one of ``sent``) that a backend error refuses, else None.

    Only 400/422 answers count; the message must name the parameter and say it is refused
    (unrecognised, unsupported, extra, invalid...), or say the model does not support thinking
    (then the first thinking parameter sent is the one refused).
    """
    if status not in (400, 422) or not isinstance(message, str) or not message:
        return None
    sent = [p for p in sent if p in ADDED_PARAMS]
    value_only = bool(_VALUE_ONLY.search(message))
    if _REJECTED.search(message):
        for param in sent:
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(param)}(?![A-Za-z0-9_])", message):
                return Rejection(param, value_only)
    if _NO_THINKING.search(message):
        for param in sent:
            if param in THINKING_PARAMS:
                return Rejection(param, False)
    return None


class DroppedParams:
    """Per worker: which added parameters each (backend, model) refused. Bounded (least recently
    used forgotten first), since model names come from clients."""

    def __init__(self, max_entries: int = 256) -> None:
        self._max = max(1, max_entries)
        self._table: OrderedDict[Hashable, frozenset[str]] = OrderedDict()

    def get(self, key: Hashable) -> frozenset[str]:
        found = self._table.get(key)
        if found is None:
            return frozenset()
        self._table.move_to_end(key)
        return found

    def add(self, key: Hashable, param: str) -> None:
        if param not in ADDED_PARAMS:
            raise ValueError(f"{param!r} is not a parameter the bridge adds")
        self._table[key] = self._table.get(key, frozenset()) | {param}
        self._table.move_to_end(key)
        while len(self._table) > self._max:
            self._table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._table)
