"""The facts about one model (``ModelFacts``) that every catalogue body reports, each from the best
source that has it: the mapping file's declaration for the model first, then what the backend's
/v1/models entry publishes (llama.cpp ``meta``, vLLM ``max_model_len``, OpenRouter
``context_length``/``architecture``/``supported_parameters``, ...), then an estimate from the model
id (``8B``, ``Q4_K_M``), then a fixed default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.translate.json_types import JSON
from bridge.translate.model_names import family_from_name, looks_like_embedding, params_from_name, quant_from_name

__all__ = ["DEFAULT_CONTEXT_LENGTH", "ModelFacts", "capabilities", "model_facts"]

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
# Bits per weight for the size estimate (GGUF averages incl. scales); 16 when nothing is known,
# the dtype vLLM and most hosted servers run.
_BITS = {"F32": 32.0, "F16": 16.0, "BF16": 16.0, "FP8": 8.0, "INT8": 8.0, "Q8_0": 8.5, "Q6_K": 6.6,
         "Q5_K_M": 5.7, "Q5_K_S": 5.5, "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K_M": 4.85, "Q4_K_S": 4.6,
         "Q4_0": 4.5, "Q4_1": 5.0, "Q3_K_L": 4.3, "Q3_K_M": 3.9, "Q3_K_S": 3.5, "Q2_K": 2.6,
         "MXFP4": 4.25, "AWQ": 4.25, "GPTQ": 4.25, "INT4": 4.25}
_DEFAULT_BITS = 16.0
_LLAMACPP_SIZES = {"Small": "S", "Medium": "M", "Large": "L", "XL": "XL"}


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

    def details(self) -> JSON:
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
    entry: Mapping[str, Any] | None = None,
    declared: Mapping[str, Any] | None = None,
    *,
    context_length_default: int = DEFAULT_CONTEXT_LENGTH,
) -> ModelFacts:
    """The facts about a model: ``declared`` (the mapping file) > backend ``entry`` > estimate > default."""
    entry = entry if isinstance(entry, Mapping) else {}
    declared = declared if isinstance(declared, Mapping) else {}
    family = _text(declared.get("family")) or family_from_name(backend_id)
    named_count, named_size = params_from_name(backend_id)
    params = (_positive_int(declared.get("parameter_count")) or _positive_int(_dig(entry, ("meta", "n_params")))
              or _parse_param_size(_text(declared.get("parameter_size"))) or named_count)
    parameter_size = (_text(declared.get("parameter_size")) or (named_size if params == named_count else "")
                      or (_human_number(params) if params else ""))
    quant = (_text(declared.get("quantization_level")) or _llamacpp_ftype(_dig(entry, ("meta", "ftype")))
             or quant_from_name(backend_id))
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


def capabilities(backend_id: str, entry: Mapping[str, Any] | None = None) -> list[str]:
    """Ollama capability names from the backend's hints in the entry, else guessed from the id."""
    entry = entry if isinstance(entry, dict) else {}
    if looks_like_embedding(backend_id) or _entry_says_embedding(entry):
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


def _context_length(entry: Mapping[str, Any]) -> int | None:
    """The first context window a known vendor field reports."""
    for path in _CONTEXT_PATHS:
        value = _positive_int(_dig(entry, path))
        if value:
            return value
    return None


def _entry_says_embedding(entry: Mapping[str, Any]) -> bool:
    """Servers that type their entries (Together, LM Studio) or list output modalities (OpenRouter)."""
    kind = entry.get("type")
    if isinstance(kind, str) and kind.lower() in ("embedding", "embeddings"):
        return True
    architecture = entry.get("architecture")
    outputs = architecture.get("output_modalities") if isinstance(architecture, dict) else None
    return isinstance(outputs, list) and bool(outputs) and all(o in ("embedding", "embeddings") for o in outputs)


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


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _non_negative_int(value: object) -> int | None:
    """0 or more (integral floats accepted), else None."""
    if value == 0 and not isinstance(value, bool):
        return 0
    return _positive_int(value)


def _dig(entry: Mapping[str, Any], path: tuple[str, ...]) -> object:
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
