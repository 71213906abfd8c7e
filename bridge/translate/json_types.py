"""The shapes the translators pass around: JSON objects as ``json.loads`` gives them, and stream events."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JSON", "Event"]

#: A JSON object; its values are unchecked until a translator reads them.
JSON: TypeAlias = dict[str, Any]
#: One server-sent event to write: (SSE event name, data object).
Event: TypeAlias = tuple[str, JSON]
