"""translate/model_facts.py: each fact from the mapping file, the backend's entry, an estimate or a default."""

from __future__ import annotations

import pytest

from bridge.translate.model_facts import capabilities, model_facts

# --- capabilities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend_id",
    ["text-embedding-3-small", "nomic-embed-text", "all-MiniLM-L6-v2", "BAAI/bge-large-en", "intfloat/e5-large"],
)
def test_embedding_capability(backend_id):
    assert capabilities(backend_id) == ["embedding"]


def test_chat_capabilities():
    assert capabilities("gpt-4o") == ["completion", "tools"]


def test_openrouter_hints_add_vision_and_thinking():
    entry = {
        "id": "x/y",
        "architecture": {"input_modalities": ["text", "image"]},
        "supported_parameters": ["tools", "reasoning"],
    }
    assert capabilities("x/y", entry) == ["completion", "tools", "vision", "thinking"]


def test_odd_hints_are_ignored():
    entry = {"architecture": "text->text", "supported_parameters": "reasoning"}
    assert capabilities("x", entry) == ["completion", "tools"]


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"supported_parameters": ["temperature"]}, ["completion"]),  # OpenRouter: no tools listed
        ({"supported_parameters": ["tools", "include_reasoning"]}, ["completion", "tools", "thinking"]),
        ({"capabilities": {"function_calling": False, "vision": True}}, ["completion", "vision"]),  # Mistral
        ({"capabilities": ["completion", "multimodal"]}, ["completion", "tools", "vision"]),  # llama.cpp
        ({"type": "embedding"}, ["embedding"]),  # Together
        ({"architecture": {"input_modalities": ["text"], "output_modalities": ["embeddings"]}}, ["embedding"]),
    ],
)
def test_capabilities_from_backend_hints(entry, expected):
    assert capabilities("opaque", entry) == expected


# --- facts: backend metadata, mapping declarations, estimates --------------------------------


def test_older_llamacpp_meta_without_runtime_context_uses_training_context():
    entry = {"id": "m", "meta": {"n_ctx_train": 131072, "n_params": 1000, "size": 5}}
    assert model_facts("m", entry).context_length == 131072


@pytest.mark.parametrize(
    "ftype, expected",
    [("Q4_K - Medium", "Q4_K_M"), ("Q5_K - Small", "Q5_K_S"), ("Q3_K - Large", "Q3_K_L"), ("Q8_0", "Q8_0"),
     ("BF16", "BF16"), ("all F32", "F32"), ("MXFP4 MoE", "MXFP4"), ("IQ2_XXS - 2.0625 bpw", "IQ2_XXS"),
     ("Q4_0 (guessed)", "Q4_0"), (7, ""), ("", "")],
)
def test_llamacpp_ftype_names(ftype, expected):
    assert model_facts("m", {"meta": {"ftype": ftype}}).quantization_level == expected


def test_declared_size_zero_and_size_vram():
    facts = model_facts("m-8B", {}, {"size": 0})
    assert facts.size == 0 and facts.size_vram == 0
    facts = model_facts("m", {"meta": {"size": 1000}}, {"size_vram": 600})
    assert facts.size == 1000 and facts.size_vram == 600  # `ollama ps`: 40%/60% CPU/GPU


def test_declared_parameter_size_gives_count_and_size_estimate():
    facts = model_facts("opaque-name", {}, {"parameter_size": "7B", "quantization_level": "Q4_K_M"})
    assert facts.parameter_count == 7_000_000_000
    assert facts.size == int(7e9 * 4.85 / 8)


def test_no_estimate_leaves_zero_size():
    facts = model_facts("gpt-4o", {"id": "gpt-4o"})
    assert facts.size == 0 and facts.size_vram == 0 and facts.parameter_count == 0
