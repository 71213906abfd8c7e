"""bridge/translate/model_names.py: what a model id says about the model (family, parameter count,
quantisation, whether it embeds), the last resort of model_facts."""

from __future__ import annotations

import pytest

from bridge.translate.model_names import family_from_name, looks_like_embedding, params_from_name, quant_from_name


@pytest.mark.parametrize(("backend_id", "family"), [
    ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama"),  # a whole token, wherever it is
    ("Qwen/Qwen2.5-7B-Instruct", "qwen"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral"),
    ("dolphin-2.9-mistral", "mistral"),  # "dolphin" is not "phi": tokens, not substrings
    ("Phi-3-mini-4k", "phi"),
    ("deepseek-r1:14b", "deepseek"),
    ("hf.co/bartowski/gemma-2-9b-it-GGUF", "gemma"),
    ("codellama-13b", "codellama"),
    ("nomic-embed-text", "nomic"),  # a known family before the embedding rule
    ("all-MiniLM-L6-v2", "bert"),  # not a known family, but an embedding model
    ("BAAI/bge-m3", "bert"),
    ("intfloat/multilingual-e5-large", "bert"),
    ("my-finetune-v2", "my"),  # no known family: the first word
    ("org/Foo_Bar-1B", "foo"),  # only the part after the last "/"
    ("1234-5678", "unknown"),
    ("", "unknown"),
])
def test_family(backend_id, family):
    assert family_from_name(backend_id) == family


def test_the_family_comes_from_the_last_path_part_only():
    assert family_from_name("llama/custom-model") == "custom"


@pytest.mark.parametrize(("backend_id", "embeds"), [
    ("nomic-embed-text", True),
    ("text-embedding-3-small", True),
    ("all-MiniLM-L6-v2", True),
    ("BAAI/bge-large-en", True),
    ("intfloat/e5-mistral-7b-instruct", True),
    ("Qwen3-Embedding-0.6B", True),
    ("llama3:8b", False),
    ("qwen2.5-7b", False),
    ("gpt-4o-mini", False),
])
def test_embedding_models_are_told_apart_by_name(backend_id, embeds):
    assert looks_like_embedding(backend_id) is embeds


@pytest.mark.parametrize(("backend_id", "params"), [
    ("meta-llama/Llama-3.1-8B-Instruct", (8_000_000_000, "8B")),
    ("qwen2.5:0.5b", (500_000_000, "0.5B")),
    ("gemma-3-270m", (270_000_000, "270M")),
    ("Qwen3-30B-A3B", (30_000_000_000, "30B")),  # "A3B" (active) is not a size token
    ("Llama-3.3-70B-Instruct-70b-q4", (70_000_000_000, "70B")),  # the same size twice is not ambiguous
    ("deepseek-r1:1.5b", (1_500_000_000, "1.5B")),
    ("mistral-7b-v0.1", (7_000_000_000, "7B")),
])
def test_parameters_from_a_size_token(backend_id, params):
    assert params_from_name(backend_id) == params


@pytest.mark.parametrize("backend_id", [
    "Mixtral-8x7B",  # "8x7B" is not one size token
    "merge-7b-13b",  # two sizes: ambiguous
    "gpt-4o-mini",
    "phi-3-mini-4k",
    "model-0b",  # zero is no size
    "7b/llama",  # only the part after the last "/"
    "v1.8b",  # a size glued to a version is not a token
    "llama8b",
])
def test_no_or_ambiguous_size_token(backend_id):
    assert params_from_name(backend_id) == (0, "")


@pytest.mark.parametrize(("backend_id", "quant"), [
    ("Llama-3.2-3B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
    ("qwen2.5:7b-instruct-q8_0", "Q8_0"),
    ("model-IQ3_XXS", "IQ3_XXS"),
    ("model-iq4_nl", "IQ4_NL"),
    ("gemma-2-9b-bf16", "BF16"),
    ("gemma-2-9b-fp16", "F16"),
    ("gemma-2-9b-f16", "F16"),
    ("llama-f32", "F32"),
    ("Qwen2.5-7B-Instruct-AWQ", "AWQ"),
    ("TheBloke/Llama-2-7B-GPTQ", "GPTQ"),
    ("gpt-oss-20b-MXFP4", "MXFP4"),
    ("model-fp8", "FP8"),
    ("mlx-community/Llama-3-8B-4bit", "INT4"),
    ("mlx-community/Llama-3-8B-8bit", "INT8"),
    ("model-int8", "INT8"),
    ("base-Q8_0-then-Q4_K_M", "Q4_K_M"),  # the last one wins
])
def test_quantisation_token(backend_id, quant):
    assert quant_from_name(backend_id) == quant


@pytest.mark.parametrize("backend_id", ["llama3:8b", "qwen-q4x", "awqward-model", "bf16x", "Q9_0", "mf16"])
def test_no_quantisation_token(backend_id):
    assert quant_from_name(backend_id) == ""
