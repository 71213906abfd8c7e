"""Model names: Ollama-side aliases, ":latest" handling and a bounded metrics-label allow-list."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from bridge.errors import ClientRequestError

__all__ = ["MAX_KNOWN_LABELS", "OTHER_LABEL", "ModelMap"]

MAX_KNOWN_LABELS = 50
# Resolution needs every backend id (catalogues such as OpenRouter list hundreds), but memory
# must stay bounded whatever a backend sends.
_MAX_KNOWN_IDS = 10_000
_LATEST = ":latest"
OTHER_LABEL = "other"


class ModelMap:
    """Aliases {"ollama-name": "backend-name"} plus the default model; never rewrites the echo."""

    def __init__(self, mapping: dict[str, str] | None = None, default_model: str | None = None) -> None:
        self._mapping: dict[str, str] = dict(mapping or {})
        self._default = default_model or None
        # Configured names are fixed at start, so they form the static part of the allow-list.
        self._configured: frozenset[str] = frozenset(
            [*self._mapping, *self._mapping.values(), *([self._default] if self._default else [])]
        )
        self._known_labels: frozenset[str] = frozenset()
        self._known_ids: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, text: str, default_model: str | None = None) -> ModelMap:
        """Build from a flat JSON object; anything else raises ValueError naming the problem."""
        return cls(_parse_flat_mapping(text), default_model)

    @property
    def mapping(self) -> dict[str, str]:
        """A copy of the configured aliases."""
        return dict(self._mapping)

    @property
    def default_model(self) -> str | None:
        """The model used when a request names none."""
        return self._default

    def to_backend(self, requested: str) -> str:
        """The backend model id for a requested name (alias, then ":latest" stripped)."""
        name = self._requested_or_default(requested)
        if name in self._mapping:
            return self._mapping[name]
        base = _strip_latest(name)
        if base == name:
            return name
        # A backend that itself spells ids with ":latest" (e.g. Ollama's /v1) keeps the tag.
        if name in self._known_ids:
            return name
        return self._mapping.get(base, base)

    def is_known(self, requested: str, backend_ids: Collection[str]) -> bool:
        """True when the requested name resolves to one of ``backend_ids``."""
        try:
            target = self.to_backend(requested)
        except ClientRequestError:
            return False
        return target in backend_ids or requested in backend_ids

    def ollama_names(self, backend_ids: list[str]) -> list[tuple[str, str]]:
        """(name shown to Ollama clients, backend id): live aliases first, then every backend id."""
        listed = set(backend_ids)
        pairs = [(alias, target) for alias, target in self._mapping.items() if target in listed]
        seen = {alias for alias in self._mapping}
        # A backend id equal to an alias key is shadowed: requests for it go to the alias target.
        for backend_id in backend_ids:
            if backend_id not in seen:
                seen.add(backend_id)
                pairs.append((backend_id, backend_id))
        return pairs

    def label(self, requested: str) -> str:
        """A bounded metrics label: a configured or learned name, else "other"."""
        if requested is None or requested == "":
            return self._default if self._default else OTHER_LABEL
        if not isinstance(requested, str):
            return OTHER_LABEL
        for name in (requested, _strip_latest(requested)):
            if name in self._configured or name in self._known_labels:
                return name
        return OTHER_LABEL

    def set_known_labels(self, names: Iterable[str]) -> None:
        """Learn backend ids from /v1/models: the first 50 become labels, all help resolution."""
        unique = list(dict.fromkeys(n for n in names if isinstance(n, str) and n))
        # One assignment each, so concurrent greenlets see either the old or the new set.
        self._known_labels = frozenset(unique[:MAX_KNOWN_LABELS])
        self._known_ids = frozenset(unique[:_MAX_KNOWN_IDS])

    def to_backend_passthrough(self, body: dict) -> dict:
        """A copy of an OpenAI request body with "model" mapped; absent stays absent."""
        out = dict(body)
        if "model" not in out:
            return out
        model = out["model"]
        if isinstance(model, str) and model.strip():
            out["model"] = self.to_backend(model)
        elif model in (None, "") and self._default:
            out["model"] = self.to_backend(self._default)
        # Other values go through untouched: the backend owns the error message for them.
        return out

    def _requested_or_default(self, requested: object) -> str:
        """The requested name, the default model when none was given, or a 400."""
        if requested is None or (isinstance(requested, str) and not requested.strip()):
            if self._default:
                # DEFAULT_MODEL may itself be an alias; resolve it like any request.
                return self._default
            raise ClientRequestError("model is required")
        if not isinstance(requested, str):
            raise ClientRequestError("model must be a string")
        return requested


def _strip_latest(name: str) -> str:
    """"m:latest" -> "m"; other names unchanged."""
    if name.endswith(_LATEST) and len(name) > len(_LATEST):
        return name[: -len(_LATEST)]
    return name


def _parse_flat_mapping(text: str) -> dict[str, str]:
    """Parse {"ollama-name": "backend-name", ...}; ValueError with a clear message otherwise."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model mapping is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f'model mapping must be a flat JSON object {{"ollama-name": "backend-name"}}, '
            f"got a JSON {_json_type(data)}"
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise ValueError(
                f"model mapping entry {key!r} must map to a backend model name (a string), "
                f"got a JSON {_json_type(value)}; nested objects are not supported"
            )
        if not key or not value:
            raise ValueError(f"model mapping entry {key!r}: names must not be empty")
    return data


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
