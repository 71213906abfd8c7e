"""Ollama catalogue bodies (/api/tags, /api/show, /api/ps, /api/pull) from OpenAI /v1/models.

What a field carries comes from one place, ``model_facts``: the mapping file's declaration for the
model first, then what the backend's /v1/models entry publishes (llama.cpp ``meta``, vLLM
``max_model_len``, OpenRouter ``context_length``/``architecture``/``supported_parameters``, ...),
then an estimate from the model id (``8B``, ``Q4_K_M``), then a fixed default.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bridge.errors import UpstreamProtocolError

if TYPE_CHECKING:  # only the type: translate/ imports nothing of the bridge but errors
    from bridge.modelmap import ModelMap

__all__ = [
    "DEFAULT_CONTEXT_LENGTH",
    "ModelFacts",
    "backend_ids",
    "capabilities",
    "digest",
    "model_entries",
    "model_facts",
    "openai_models_response",
    "ps_response",
    "pull_response",
    "show_response",
    "tags_response",
    "template_for",
]

DEFAULT_CONTEXT_LENGTH = 4096
# Where OpenAI-compatible servers put the context window in /v1/models entries, best first: what
# the server will accept per request (vLLM, llama.cpp's per-slot n_ctx, LM Studio), then what the
# model was trained for (llama.cpp), then catalogue figures (OpenRouter, Groq, Mistral, Together).
_CONTEXT_PATHS = (
    ("max_model_len",),
    ("meta", "n_ctx"),
    ("loaded_context_length",),
    ("context_length",),
    ("meta", "n_ctx_train"),
    ("top_provider", "context_length"),
    ("context_window",),
    ("max_context_length",),
)
_EMBEDDING_MARKERS = ("embed", "minilm", "bge", "e5-")
# Families matched as whole name tokens, so "dolphin" is not "phi" and "Meta-Llama" is "llama".
_KNOWN_FAMILIES = frozenset(
    "codellama llama mixtral mistral gemma qwen phi deepseek granite command falcon starcoder "
    "gpt claude gemini nomic bert olmo smollm glm minicpm llava".split()
)
_TOKEN = re.compile(r"[a-z]+")
# "8B", "0.5b", "270M" as a name token (not "A3B" of "30B-A3B", not "8x7B").
_PARAMS_IN_NAME = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([bBmM])(?![A-Za-z0-9])")
# GGUF file types and common checkpoint formats as name tokens ("Q4_K_M", "iq3_xxs", "bf16", "AWQ").
_QUANT_IN_NAME = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[A-Z0-9]{1,3}){0,2}|BF16|FP16|F16|F32|FP8|MXFP4|AWQ|GPTQ|INT[48]|[48]BIT)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_QUANT_ALIASES = {"FP16": "F16", "4BIT": "INT4", "8BIT": "INT8"}
# Bits per weight for the size estimate (GGUF averages incl. scales); 16 when nothing is known,
# the dtype vLLM and most hosted servers run.
_BITS = {"F32": 32.0, "F16": 16.0, "BF16": 16.0, "FP8": 8.0, "INT8": 8.0, "Q8_0": 8.5, "Q6_K": 6.6,
         "Q5_K_M": 5.7, "Q5_K_S": 5.5, "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K_M": 4.85, "Q4_K_S": 4.6,
         "Q4_0": 4.5, "Q4_1": 5.0, "Q3_K_L": 4.3, "Q3_K_M": 3.9, "Q3_K_S": 3.5, "Q2_K": 2.6,
         "MXFP4": 4.25, "AWQ": 4.25, "GPTQ": 4.25, "INT4": 4.25}
_DEFAULT_BITS = 16.0
_LLAMACPP_SIZES = {"Small": "S", "Medium": "M", "Large": "L", "XL": "XL"}
# Unix seconds beyond this are milliseconds (some servers send those); 1e11 s is year 5138.
_MILLIS_THRESHOLD = 1e11
_MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z, the last instant RFC 3339 can write


@dataclass(frozen=True)
class ModelFacts:
    """Everything the catalogue says about one model, each from the best source that has it."""

    family: str
    parameter_size: str
    parameter_count: int
    quantization_level: str
    context_length: int
    embedding_length: int | None
    vocab_size: int | None
    size: int
    size_vram: int
    capabilities: tuple[str, ...]
    license: str

    def details(self) -> dict:
        """Ollama's ``details`` block."""
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


def model_facts(
    backend_id: str,
    entry: Mapping | None = None,
    declared: Mapping | None = None,
    *,
    context_length_default: int = DEFAULT_CONTEXT_LENGTH,
) -> ModelFacts:
    """The facts about a model: ``declared`` (the mapping file) > backend ``entry`` > estimate > default."""
    entry = entry if isinstance(entry, Mapping) else {}
    declared = declared if isinstance(declared, Mapping) else {}
    family = _text(declared.get("family")) or _family(backend_id)
    named_count, named_size = _params_from_name(backend_id)
    params = (_positive_int(declared.get("parameter_count")) or _positive_int(_dig(entry, ("meta", "n_params")))
              or _parse_param_size(_text(declared.get("parameter_size"))) or named_count)
    parameter_size = (_text(declared.get("parameter_size")) or (named_size if params == named_count else "")
                      or (_human_number(params) if params else ""))
    quant = (_text(declared.get("quantization_level")) or _llamacpp_ftype(_dig(entry, ("meta", "ftype")))
             or _quant_from_name(backend_id))
    context = (_positive_int(declared.get("context_length")) or _context_length(entry) or context_length_default)
    size = _non_negative_int(declared.get("size"))
    if size is None:
        size = _positive_int(_dig(entry, ("meta", "size"))) or _estimated_size(params, quant)
    size_vram = _non_negative_int(declared.get("size_vram"))
    if size_vram is None:
        # The backend holds the whole model on its accelerator as far as the bridge can tell;
        # `ollama ps` then says "100% GPU" instead of "100% CPU".
        size_vram = size
    caps = declared.get("capabilities")
    return ModelFacts(
        family=family,
        parameter_size=parameter_size,
        parameter_count=params,
        quantization_level=quant,
        context_length=context,
        embedding_length=(_positive_int(declared.get("embedding_length"))
                          or _positive_int(_dig(entry, ("meta", "n_embd")))),
        vocab_size=_positive_int(_dig(entry, ("meta", "n_vocab"))),
        size=size,
        size_vram=size_vram,
        capabilities=tuple(caps) if isinstance(caps, list) else tuple(capabilities(backend_id, entry)),
        license=_text(declared.get("license")),
    )


def tags_response(models_resp: dict, modelmap: ModelMap, *, modified_at: str) -> dict:
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


def model_entries(models_resp: object) -> dict[str, dict]:
    """id -> entry of a /v1/models body; {} for none or an unusable body (callers then estimate)."""
    try:
        return _entries_by_id(models_resp)
    except UpstreamProtocolError:
        return {}


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
    declared: Mapping | None = None,
) -> dict:
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
    entries: Mapping[str, dict] | None = None,
    modelmap: ModelMap | None = None,
) -> dict:
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
    """Ollama capability names from the backend's hints in the entry, else guessed from the id."""
    entry = entry if isinstance(entry, dict) else {}
    if _looks_like_embedding(backend_id) or _entry_says_embedding(entry):
        return ["embedding"]
    caps = ["completion"]
    # OpenRouter lists the request parameters a model takes: no "tools" there means none.
    supported = entry.get("supported_parameters")
    supported = supported if isinstance(supported, list) else None
    # Mistral's API describes capabilities as booleans; llama.cpp lists names ("multimodal").
    flags = entry.get("capabilities")
    named = flags if isinstance(flags, list) else []
    flags = flags if isinstance(flags, dict) else {}
    if (supported is None or "tools" in supported) and flags.get("function_calling") is not False:
        caps.append("tools")
    architecture = entry.get("architecture")
    modalities = architecture.get("input_modalities") if isinstance(architecture, dict) else None
    if (isinstance(modalities, list) and "image" in modalities) or flags.get("vision") is True \
            or "multimodal" in named or "vision" in named:
        caps.append("vision")
    if supported is not None and ("reasoning" in supported or "include_reasoning" in supported):
        caps.append("thinking")
    return caps


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


def _tag_entry(name: str, backend_id: str, entry: dict, modified_at: str, declared: Mapping) -> dict:
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


def _model_info(requested: str, backend_id: str, facts: ModelFacts) -> dict:
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


def _context_length(entry: Mapping) -> int | None:
    """The first context window a known vendor field reports."""
    for path in _CONTEXT_PATHS:
        value = _positive_int(_dig(entry, path))
        if value:
            return value
    return None


def _entry_says_embedding(entry: Mapping) -> bool:
    """Servers that type their entries (Together, LM Studio) or list output modalities (OpenRouter)."""
    kind = entry.get("type")
    if isinstance(kind, str) and kind.lower() in ("embedding", "embeddings"):
        return True
    architecture = entry.get("architecture")
    outputs = architecture.get("output_modalities") if isinstance(architecture, dict) else None
    return isinstance(outputs, list) and bool(outputs) and all(o in ("embedding", "embeddings") for o in outputs)


def _params_from_name(backend_id: str) -> tuple[int, str]:
    """Parameters from a size token in the id ("Llama-3.1-8B" -> (8e9, "8B")); (0, "") when none
    or ambiguous."""
    found = {(float(n), unit.upper()) for n, unit in _PARAMS_IN_NAME.findall(backend_id.rsplit("/", 1)[-1])}
    if len(found) != 1:
        return 0, ""
    ((number, unit),) = found
    value = int(round(number * (1e9 if unit == "B" else 1e6)))
    return (value, f"{number:g}{unit}") if value > 0 else (0, "")


def _parse_param_size(text: str) -> int:
    """A declared "7B" / "270M" / "8.0B" as a count (0 when not in that form)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bBmMkK])\s*", text or "")
    if not match:
        return 0
    scale = {"B": 1e9, "M": 1e6, "K": 1e3}[match.group(2).upper()]
    return int(round(float(match.group(1)) * scale))


def _human_number(count: int) -> str:
    """Ollama's rendering of a parameter count: 8030261248 -> "8.0B", 268098176 -> "268.10M"."""
    for scale, unit, digits in ((1e9, "B", 1), (1e6, "M", 2)):
        if count >= scale:
            number = count / scale
            return f"{number:.0f}{unit}" if number == math.floor(number) else f"{number:.{digits}f}{unit}"
    if count >= 1000:
        return f"{count / 1000:.0f}K"
    return str(count)


def _quant_from_name(backend_id: str) -> str:
    """A quantisation token in the id ("...Q4_K_M.gguf", "-AWQ", "-bf16"), upper-cased, else ""."""
    found = _QUANT_IN_NAME.findall(backend_id)
    if not found:
        return ""
    token = found[-1].upper()
    return _QUANT_ALIASES.get(token, token)


def _llamacpp_ftype(value: object) -> str:
    """llama.cpp's file type name ("Q4_K - Medium", "BF16", "MXFP4 MoE") as Ollama spells it."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return ""
    text = value.replace("(guessed)", "").strip()
    if text.lower().startswith("all "):
        text = text[4:]
    head, _, tail = text.partition(" - ")
    head = head.split()[0].upper() if head.split() else ""
    size = _LLAMACPP_SIZES.get(tail.strip())
    return f"{head}_{size}" if size else head


def _estimated_size(params: int, quant: str) -> int:
    """Bytes of weights: parameters x bits per weight of the quantisation (16-bit when unknown)."""
    if params <= 0:
        return 0
    bits = _BITS.get(quant)
    if bits is None:
        digit = re.search(r"\d", quant or "")
        bits = float(digit.group()) + 0.5 if digit and quant.upper().startswith(("Q", "IQ")) else _DEFAULT_BITS
    return int(params * bits / 8)


def _untagged(name: str) -> str:
    """``m:latest`` -> ``m``: one digest for both spellings, in /api/tags and /api/ps alike."""
    return name[: -len(":latest")] if name.endswith(":latest") and len(name) > len(":latest") else name


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _non_negative_int(value: object) -> int | None:
    """0 or more (integral floats accepted), else None."""
    if value == 0 and not isinstance(value, bool):
        return 0
    return _positive_int(value)


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
