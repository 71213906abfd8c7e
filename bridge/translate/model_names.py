"""What a model's id says about it: family, parameter count, quantisation, whether it embeds.

The last resort of ``model_facts`` (after the mapping file and the backend's /v1/models entry).
"""

from __future__ import annotations

import re

__all__ = ["family_from_name", "looks_like_embedding", "params_from_name", "quant_from_name"]

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


def family_from_name(backend_id: str) -> str:
    """A model family from the id: a known family token, else the first word, else "unknown"."""
    base = backend_id.rsplit("/", 1)[-1].lower()
    tokens: list[str] = _TOKEN.findall(base)
    for token in tokens:
        if token in _KNOWN_FAMILIES:
            return token
    if looks_like_embedding(backend_id):
        return "bert"
    return tokens[0] if tokens else "unknown"


def looks_like_embedding(backend_id: str) -> bool:
    """Embedding models are told apart by name; /v1/models has no type field."""
    lowered = backend_id.lower()
    return any(marker in lowered for marker in _EMBEDDING_MARKERS)


def params_from_name(backend_id: str) -> tuple[int, str]:
    """Parameters from a size token in the id ("Llama-3.1-8B" -> (8e9, "8B")); (0, "") when none
    or ambiguous."""
    found = {(float(n), unit.upper()) for n, unit in _PARAMS_IN_NAME.findall(backend_id.rsplit("/", 1)[-1])}
    if len(found) != 1:
        return 0, ""
    ((number, unit),) = found
    value = int(round(number * (1e9 if unit == "B" else 1e6)))
    return (value, f"{number:g}{unit}") if value > 0 else (0, "")


def quant_from_name(backend_id: str) -> str:
    """A quantisation token in the id ("...Q4_K_M.gguf", "-AWQ", "-bf16"), upper-cased, else ""."""
    found: list[str] = _QUANT_IN_NAME.findall(backend_id)
    if not found:
        return ""
    token = found[-1].upper()
    return _QUANT_ALIASES.get(token, token)
