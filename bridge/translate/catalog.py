"""Ollama catalogue bodies (/api/tags, /api/show, /api/ps, /api/pull) and /v1/models, from OpenAI /v1/models.

Every field about a model itself comes from ``model_facts`` (the mapping file's declaration, the
backend's entry, an estimate from the id, a default); this module lays those facts out in each body.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, overload

from bridge.errors import UpstreamProtocolError
from bridge.translate.json_types import JSON
from bridge.translate.model_facts import DEFAULT_CONTEXT_LENGTH, ModelFacts, model_facts

if TYPE_CHECKING:  # only the type: translate/ imports nothing of the bridge but errors
    from bridge.modelmap import ModelMap

__all__ = [
    "backend_ids",
    "digest",
    "model_entries",
    "openai_models_response",
    "ps_response",
    "pull_response",
    "show_response",
    "tags_response",
    "template_for",
]

# Unix seconds beyond this are milliseconds (some servers send those); 1e11 s is year 5138.
_MILLIS_THRESHOLD = 1e11
_MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z, the last instant RFC 3339 can write


def tags_response(models_resp: JSON, modelmap: ModelMap, *, modified_at: str) -> JSON:
    """The /api/tags body: aliases and backend ids, each a complete Ollama model entry."""
    entries = _entries_by_id(models_resp)
    models = [
        _tag_entry(name, backend_id, entries[backend_id], modified_at, modelmap.facts(name, backend_id))
        for name, backend_id in modelmap.ollama_names(list(entries))
    ]
    return {"models": models}


def ollama_tag(name: str) -> str:
    """The name as Ollama lists it: with a tag (``m`` -> ``m:latest``; ``m:7b`` unchanged).

    Clients match on the tagged form (LangChain's ``validate_model_on_init`` accepts ``m`` and
    ``m:latest`` only when the listing says ``m:latest``); requests for either spelling resolve.
    """
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def model_entries(models_resp: object) -> dict[str, JSON]:
    """id -> entry of a /v1/models body; {} for none or an unusable body (callers then estimate)."""
    try:
        return _entries_by_id(models_resp)
    except UpstreamProtocolError:
        return {}


def backend_ids(models_resp: JSON) -> list[str]:
    """The model ids a /v1/models body lists, in order, without duplicates."""
    return list(_entries_by_id(models_resp))


def show_response(
    requested: str,
    backend_id: str,
    model_entry: JSON | None,
    *,
    modified_at: str,
    context_length_default: int = DEFAULT_CONTEXT_LENGTH,
    declared: Mapping[str, Any] | None = None,
) -> JSON:
    """The /api/show body; ``model_info`` is always present (the Python client requires it)."""
    entry = model_entry if isinstance(model_entry, dict) else {}
    facts = model_facts(backend_id, entry, declared, context_length_default=context_length_default)
    return {
        "modelfile": f"FROM {backend_id}",
        "parameters": "",
        "template": template_for(facts.capabilities),
        "license": facts.license,
        "details": facts.details(),
        "model_info": _model_info(requested, backend_id, facts),
        "capabilities": list(facts.capabilities),
        "modified_at": _modified_at(entry, modified_at),
    }


def ps_response(
    running: Iterable[tuple[str, str, str]],
    entries: Mapping[str, JSON] | None = None,
    modelmap: ModelMap | None = None,
) -> JSON:
    """The /api/ps body from loaded models: (name, backend id, expires_at RFC 3339), in order.

    ``entries`` are the backend's /v1/models entries by id and ``modelmap`` gives the mapping
    file's facts; both optional (the fields then carry estimates and defaults).
    """
    entries = entries or {}
    models = []
    for name, backend_id, expires_at in running:
        declared = modelmap.facts(name, backend_id) if modelmap is not None else None
        facts = model_facts(backend_id, entries.get(backend_id), declared)
        models.append({
            "name": name,
            "model": name,
            "size": facts.size,
            "digest": digest(_untagged(name)),
            "details": facts.details(),
            "expires_at": expires_at,
            "size_vram": facts.size_vram,
            "context_length": facts.context_length,
        })
    return {"models": models}


@overload
def pull_response(stream: Literal[True], digest_of: str) -> list[JSON]: ...
@overload
def pull_response(stream: Literal[False], digest_of: str) -> JSON: ...
@overload
def pull_response(stream: bool, digest_of: str) -> list[JSON] | JSON: ...
def pull_response(stream: bool, digest_of: str) -> list[JSON] | JSON:
    """Progress for a model the backend already has: nothing to download, so straight to success."""
    # Real Ollama puts no digest on these three statuses; a digest would make the CLI and
    # Open WebUI draw an empty download bar. digest_of is kept for the caller's signature.
    del digest_of
    if not stream:
        return {"status": "success"}
    return [
        {"status": "pulling manifest"},
        {"status": "verifying sha256 digest"},
        {"status": "success"},
    ]


def openai_models_response(models_resp: JSON, modelmap: ModelMap) -> JSON:
    """/v1/models in OpenAI's shape, with each live alias added as an entry of its own."""
    entries = _entries_by_id(models_resp)
    data = []
    for name, backend_id in modelmap.ollama_names(list(entries)):
        item = dict(entries[backend_id])
        item["id"] = name
        item.setdefault("object", "model")
        data.append(item)
    return {"object": "list", "data": data}


def digest(name: str) -> str:
    """A stable 64-hex digest for a model name (``ollama list`` slices it, so length matters)."""
    return hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()


def template_for(caps: Iterable[str]) -> str:
    """A Go template that says what the model does, the way Ollama reads templates.

    Ollama grants ``tools`` to a template that uses ``.Tools``, ``insert`` to one that uses
    ``.Suffix`` and ``thinking`` to one that renders ``.Thinking`` of ``.Messages``; clients that
    infer capabilities from the template reach the same answer as from ``capabilities``. The
    backend applies its own chat template: this one describes, it is never rendered.
    """
    caps = set(caps)
    if "completion" not in caps:
        return "{{ .Prompt }}"
    parts = []
    if "tools" in caps:
        parts.append("{{- if .Tools }}<|im_start|>system\nYou can call these tools:\n"
                     "{{- range .Tools }}\n{{ . }}{{- end }}<|im_end|>\n{{ end }}")
    parts.append("{{- range .Messages }}<|im_start|>{{ .Role }}\n")
    if "thinking" in caps:
        parts.append("{{ if .Thinking }}<think>{{ .Thinking }}</think>\n{{ end }}")
    parts.append("{{ if .Content }}{{ .Content }}{{ end }}")
    if "tools" in caps:
        parts.append('{{- range .ToolCalls }}\n<tool_call>{"name": "{{ .Function.Name }}", '
                     '"arguments": {{ .Function.Arguments }}}</tool_call>{{ end }}')
    parts.append("<|im_end|>\n{{ end }}<|im_start|>assistant\n")
    chat = "".join(parts)
    if "insert" in caps:
        return ("{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>"
                "{{- else }}" + chat + "{{- end }}")
    return chat


def _entries_by_id(models_resp: object) -> dict[str, JSON]:
    """id -> entry for every usable entry of a /v1/models body (first one wins)."""
    data = models_resp.get("data") if isinstance(models_resp, dict) else None
    if not isinstance(data, list):
        raise UpstreamProtocolError("backend /v1/models response has no data list")
    entries: dict[str, JSON] = {}
    for item in data:
        # One malformed entry should not hide every other model from the client.
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            entries.setdefault(item["id"], item)
    return entries


def _tag_entry(name: str, backend_id: str, entry: JSON, modified_at: str, declared: Mapping[str, Any]) -> JSON:
    """One /api/tags model entry (the digest is the same whichever spelling a client uses)."""
    tagged = ollama_tag(name)
    facts = model_facts(backend_id, entry, declared)
    return {
        "name": tagged,
        "model": tagged,
        "modified_at": _modified_at(entry, modified_at),
        "size": facts.size,
        "digest": digest(_untagged(name)),
        "details": facts.details(),
        "capabilities": list(facts.capabilities),
    }


def _model_info(requested: str, backend_id: str, facts: ModelFacts) -> JSON:
    """The GGUF-style keys clients read: architecture, basename, size, context length."""
    arch = facts.family
    info = {
        "general.architecture": arch,
        # VS Code Copilot shows the basename in its model picker: use the name the user chose.
        "general.basename": requested or backend_id,
        "general.parameter_count": facts.parameter_count,
        f"{arch}.context_length": facts.context_length,
    }
    if facts.embedding_length:
        info[f"{arch}.embedding_length"] = facts.embedding_length
    if facts.vocab_size:
        info[f"{arch}.vocab_size"] = facts.vocab_size
    return info


def _untagged(name: str) -> str:
    """``m:latest`` -> ``m``: one digest for both spellings, in /api/tags and /api/ps alike."""
    return name[: -len(":latest")] if name.endswith(":latest") and len(name) > len(":latest") else name


def _modified_at(entry: JSON, default: str) -> str:
    """RFC 3339 UTC from the entry's unix ``created``, else the caller's timestamp."""
    created = entry.get("created")
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        return default
    try:
        seconds = float(created)
    except OverflowError:  # an int beyond float range
        return default
    if not math.isfinite(seconds) or seconds <= 0:
        return default
    if seconds > _MILLIS_THRESHOLD:
        seconds /= 1000
    if seconds > _MAX_UNIX:
        return default
    moment = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
