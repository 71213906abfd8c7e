"""Ollama catalogue bodies (/api/tags, /api/show, /api/ps, /api/pull) from OpenAI /v1/models."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bridge.errors import UpstreamProtocolError

if TYPE_CHECKING:  # only the type: translate/ imports nothing of the bridge but errors
    from bridge.modelmap import ModelMap

__all__ = [
    "DEFAULT_CONTEXT_LENGTH",
    "backend_ids",
    "capabilities",
    "digest",
    "openai_models_response",
    "ps_response",
    "pull_response",
    "show_response",
    "tags_response",
]

DEFAULT_CONTEXT_LENGTH = 4096
# Where OpenAI-compatible servers put the context window in /v1/models entries, best first:
# vLLM, OpenRouter, llama.cpp server, OpenRouter's provider block, Groq.
_CONTEXT_PATHS = (
    ("max_model_len",),
    ("context_length",),
    ("meta", "n_ctx_train"),
    ("top_provider", "context_length"),
    ("context_window",),
)
_EMBEDDING_MARKERS = ("embed", "minilm", "bge", "e5-")
# Families matched as whole name tokens, so "dolphin" is not "phi" and "Meta-Llama" is "llama".
_KNOWN_FAMILIES = frozenset(
    "codellama llama mixtral mistral gemma qwen phi deepseek granite command falcon starcoder "
    "gpt claude gemini nomic bert olmo smollm glm minicpm llava".split()
)
_TOKEN = re.compile(r"[a-z]+")
# Unix seconds beyond this are milliseconds (some servers send those); 1e11 s is year 5138.
_MILLIS_THRESHOLD = 1e11
_MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z, the last instant RFC 3339 can write


def tags_response(models_resp: dict, modelmap: ModelMap, *, modified_at: str) -> dict:
    """The /api/tags body: aliases and backend ids, each a complete Ollama model entry."""
    entries = _entries_by_id(models_resp)
    models = [
        _tag_entry(name, backend_id, entries[backend_id], modified_at)
        for name, backend_id in modelmap.ollama_names(list(entries))
    ]
    return {"models": models}


def ollama_tag(name: str) -> str:
    """The name as Ollama lists it: with a tag (``m`` -> ``m:latest``; ``m:7b`` unchanged).

    Clients match on the tagged form (LangChain's ``validate_model_on_init`` accepts ``m`` and
    ``m:latest`` only when the listing says ``m:latest``); requests for either spelling resolve.
    """
    return name if ":" in name else f"{name}:latest"


def backend_ids(models_resp: dict) -> list[str]:
    """The model ids a /v1/models body lists, in order, without duplicates."""
    return list(_entries_by_id(models_resp))


def show_response(
    requested: str,
    backend_id: str,
    model_entry: dict | None,
    *,
    modified_at: str,
    context_length_default: int = DEFAULT_CONTEXT_LENGTH,
) -> dict:
    """The /api/show body; ``model_info`` is always present (the Python client requires it)."""
    entry = model_entry if isinstance(model_entry, dict) else {}
    details = _details(backend_id)
    return {
        "modelfile": f"FROM {backend_id}",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "license": "",
        "details": details,
        "model_info": _model_info(requested, backend_id, entry, details["family"], context_length_default),
        "capabilities": capabilities(backend_id, entry),
        "modified_at": _modified_at(entry, modified_at),
    }


def ps_response(recent: list[tuple[str, str, str]]) -> dict:
    """The /api/ps body from recently used models: (name, backend id, expires_at RFC 3339)."""
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "size": 0,
                "digest": digest(name),
                "details": _details(backend_id),
                "expires_at": expires_at,
                "size_vram": 0,
                "context_length": DEFAULT_CONTEXT_LENGTH,
            }
            for name, backend_id, expires_at in recent
        ]
    }


def pull_response(stream: bool, digest_of: str) -> list[dict] | dict:
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


def openai_models_response(models_resp: dict, modelmap: ModelMap) -> dict:
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


def capabilities(backend_id: str, entry: dict | None = None) -> list[str]:
    """Ollama capability names, guessed from the id and any vendor hints in the entry."""
    if _looks_like_embedding(backend_id):
        return ["embedding"]
    caps = ["completion", "tools"]
    entry = entry if isinstance(entry, dict) else {}
    # OpenRouter describes modalities and parameters; other servers simply lack these keys.
    architecture = entry.get("architecture")
    modalities = architecture.get("input_modalities") if isinstance(architecture, dict) else None
    if isinstance(modalities, list) and "image" in modalities:
        caps.append("vision")
    supported = entry.get("supported_parameters")
    if isinstance(supported, list) and "reasoning" in supported:
        caps.append("thinking")
    return caps


def _entries_by_id(models_resp: object) -> dict[str, dict]:
    """id -> entry for every usable entry of a /v1/models body (first one wins)."""
    data = models_resp.get("data") if isinstance(models_resp, dict) else None
    if not isinstance(data, list):
        raise UpstreamProtocolError("backend /v1/models response has no data list")
    entries: dict[str, dict] = {}
    for item in data:
        # One malformed entry should not hide every other model from the client.
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            entries.setdefault(item["id"], item)
    return entries


def _tag_entry(name: str, backend_id: str, entry: dict, modified_at: str) -> dict:
    """One /api/tags model entry (the digest is the same whichever spelling a client uses)."""
    tagged = ollama_tag(name)
    return {
        "name": tagged,
        "model": tagged,
        "modified_at": _modified_at(entry, modified_at),
        "size": 0,
        "digest": digest(name),
        "details": _details(backend_id),
        "capabilities": capabilities(backend_id, entry),
    }


def _details(backend_id: str) -> dict:
    """Ollama's details block; only the family can be guessed from an id."""
    family = _family(backend_id)
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": "",
        "quantization_level": "",
    }


def _family(backend_id: str) -> str:
    """A model family from the id: a known family token, else the first word, else "unknown"."""
    base = backend_id.rsplit("/", 1)[-1].lower()
    tokens = _TOKEN.findall(base)
    for token in tokens:
        if token in _KNOWN_FAMILIES:
            return token
    if _looks_like_embedding(backend_id):
        return "bert"
    return tokens[0] if tokens else "unknown"


def _looks_like_embedding(backend_id: str) -> bool:
    """Embedding models are told apart by name; /v1/models has no type field."""
    lowered = backend_id.lower()
    return any(marker in lowered for marker in _EMBEDDING_MARKERS)


def _model_info(requested: str, backend_id: str, entry: dict, arch: str, context_default: int) -> dict:
    """The GGUF-style keys clients read: architecture, basename, size, context length."""
    info = {
        "general.architecture": arch,
        # VS Code Copilot shows the basename in its model picker: use the name the user chose.
        "general.basename": requested or backend_id,
        "general.parameter_count": _positive_int(_dig(entry, ("meta", "n_params"))) or 0,
        f"{arch}.context_length": _context_length(entry) or context_default,
    }
    embedding_length = _positive_int(_dig(entry, ("meta", "n_embd")))
    if embedding_length:
        info[f"{arch}.embedding_length"] = embedding_length
    return info


def _context_length(entry: dict) -> int | None:
    """The first context window a known vendor field reports."""
    for path in _CONTEXT_PATHS:
        value = _positive_int(_dig(entry, path))
        if value:
            return value
    return None


def _dig(entry: dict, path: tuple[str, ...]) -> object:
    """entry[path[0]][path[1]]..., or None when any step is missing."""
    value: object = entry
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _positive_int(value: object) -> int | None:
    """A positive whole number (integral floats accepted), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value > 0 else None


def _modified_at(entry: dict, default: str) -> str:
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
