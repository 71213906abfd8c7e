"""Model names: Ollama-side aliases, ":latest" handling and a bounded metrics-label allow-list."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping

from bridge.errors import ClientRequestError

__all__ = ["CAPABILITIES", "MAX_KNOWN_LABELS", "METADATA_KEYS", "OTHER_LABEL", "ModelMap"]

MAX_KNOWN_LABELS = 50
# Resolution needs every backend id (catalogues such as OpenRouter list hundreds), but memory
# must stay bounded whatever a backend sends.
_MAX_KNOWN_IDS = 10_000
_LATEST = ":latest"
OTHER_LABEL = "other"
# Ollama's capability names a mapping entry may declare (types/model/capability.go).
CAPABILITIES = ("completion", "tools", "insert", "vision", "embedding", "thinking", "image", "audio")
# Per-model facts a mapping entry may declare, and the JSON type each must have.
METADATA_KEYS = {
    "family": "string",
    "parameter_size": "string",
    "quantization_level": "string",
    "license": "string",
    "context_length": "count",
    "embedding_length": "count",
    "parameter_count": "count",
    "size": "bytes",
    "size_vram": "bytes",
    "capabilities": "capabilities",
}
_MAX_TEXT = 256  # a family or quantization label, not a document
_MAX_LICENSE = 64 * 1024


class ModelMap:
    """Aliases {"ollama-name": "backend-name"} plus the default model; never rewrites the echo."""

    def __init__(self, mapping: Mapping[str, str | Mapping] | None = None, default_model: str | None = None) -> None:
        # A value is a backend name, or an object {"model": backend name, ...facts} (see from_json).
        targets, facts = _split_entries(dict(mapping or {}))
        self._mapping: dict[str, str] = targets
        self._facts: dict[str, dict] = facts
        self._default = default_model or None
        # Configured names are fixed at start, so they form the static part of the allow-list.
        self._configured: frozenset[str] = frozenset(
            [*self._mapping, *self._mapping.values(), *([self._default] if self._default else [])]
        )
        self._known_labels: frozenset[str] = frozenset()
        self._known_ids: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, text: str, default_model: str | None = None) -> ModelMap:
        """Build from a JSON object; anything else raises ValueError naming the problem.

        Each value is a backend model name, or an object with an optional ``"model"`` (the backend
        name; the key itself when absent) and facts about the model (``METADATA_KEYS``).
        """
        return cls(_parse_mapping(text), default_model)

    @property
    def mapping(self) -> dict[str, str]:
        """A copy of the configured aliases."""
        return dict(self._mapping)

    @property
    def entries(self) -> dict[str, str | dict]:
        """The configuration as given, normalised: a name, or {"model": name, ...facts}."""
        out: dict[str, str | dict] = {}
        for alias, target in self._mapping.items():
            facts = self._facts.get(alias)
            out[alias] = {"model": target, **facts} if facts else target
        return out

    def facts(self, requested: str, backend_id: str | None = None) -> dict:
        """Facts the mapping declares for a requested name (copies; {} when none).

        The entry of the name itself (``m`` and ``m:latest`` alike) wins; facts declared for the
        backend id (an entry keyed by that id which maps to itself) fill the rest, so aliases of
        a described model inherit its description.
        """
        out: dict = {}
        if isinstance(backend_id, str) and self._mapping.get(backend_id) == backend_id:
            out.update(self._facts.get(backend_id, {}))
        if isinstance(requested, str):
            for name in (_strip_latest(requested), requested):
                if name in self._mapping:
                    out.update(self._facts.get(name, {}))
        return {k: list(v) if isinstance(v, list) else v for k, v in out.items()}

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


def _parse_mapping(text: str) -> dict[str, str | dict]:
    """Parse {"ollama-name": "backend-name" | {"model": ..., facts}}; ValueError with a clear message."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model mapping is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f'model mapping must be a JSON object {{"ollama-name": "backend-name"}}, '
            f"got a JSON {_json_type(data)}"
        )
    _split_entries(data)  # validates
    return data


def _split_entries(data: dict) -> tuple[dict[str, str], dict[str, dict]]:
    """{name: backend} and {name: facts} from configured entries; ValueError on anything invalid."""
    targets: dict[str, str] = {}
    facts: dict[str, dict] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"model mapping entry {key!r}: names must not be empty")
        if isinstance(value, str):
            if not value:
                raise ValueError(f"model mapping entry {key!r}: names must not be empty")
            targets[key] = value
            continue
        if not isinstance(value, Mapping):
            raise ValueError(
                f"model mapping entry {key!r} must map to a backend model name (a string) or an object "
                f'such as {{"model": "backend-name", "context_length": 8192}}, got a JSON {_json_type(value)}'
            )
        target = value.get("model", key)
        if not isinstance(target, str) or not target:
            raise ValueError(f"model mapping entry {key!r}: \"model\" must be a non-empty backend model name")
        targets[key] = target
        declared = {name: _fact(key, name, item) for name, item in value.items() if name != "model"}
        if declared:
            facts[key] = declared
    return targets, facts


def _fact(entry: str, name: str, value: object) -> object:
    """One validated fact of a mapping entry."""
    kind = METADATA_KEYS.get(name)
    where = f"model mapping entry {entry!r}: {name!r}"
    if kind is None:
        known = ", ".join(["model", *METADATA_KEYS])
        raise ValueError(f"model mapping entry {entry!r}: unknown key {name!r} (known: {known})")
    if kind == "string":
        limit = _MAX_LICENSE if name == "license" else _MAX_TEXT
        if not isinstance(value, str) or len(value) > limit:
            raise ValueError(f"{where} must be a string of at most {limit} characters")
        return value
    if kind == "capabilities":
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ValueError(f"{where} must be a list of strings, some of {', '.join(CAPABILITIES)}")
        unknown = [c for c in value if c not in CAPABILITIES]
        if unknown:
            raise ValueError(f"{where}: unknown capability {unknown[0]!r} (known: {', '.join(CAPABILITIES)})")
        return list(dict.fromkeys(value))
    number = _whole_number(value)
    if number is None or number < (0 if kind == "bytes" else 1) or number > 2**63 - 1:
        what = "a whole number of bytes (0 or more)" if kind == "bytes" else "a positive whole number"
        raise ValueError(f"{where} must be {what}")
    return number


def _whole_number(value: object) -> int | None:
    """An int (integral floats accepted), else None; booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        return int(value)
    return value


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
