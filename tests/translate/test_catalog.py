"""/api/tags, /api/show, /api/ps, /api/pull and /v1/models bodies."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import pytest
from ollama._types import ListResponse, ProcessResponse, ProgressResponse, ShowResponse

from bridge.errors import UpstreamProtocolError
from bridge.modelmap import ModelMap
from bridge.translate.catalog import (
    backend_ids,
    capabilities,
    digest,
    openai_models_response,
    ps_response,
    pull_response,
    show_response,
    tags_response,
)

NOW = "2025-07-07T20:22:19.184789Z"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def models(*ids, **extra):
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": 1700000000, "owned_by": "x", **extra} for i in ids],
    }


# --- tags ------------------------------------------------------------------------------------


def test_tags_parse_with_ollama_client_model():
    # Case 3: two models, every field of the right type.
    body = tags_response(models("m1", "m2"), ModelMap(), modified_at=NOW)
    parsed = ListResponse.model_validate(body)
    assert [m.model for m in parsed.models] == ["m1:latest", "m2:latest"]
    for raw, model in zip(body["models"], parsed.models):
        assert raw["name"] == raw["model"]
        assert HEX64.match(raw["digest"])
        assert model.modified_at.tzinfo is not None
        assert isinstance(model.size, int)
        assert isinstance(model.details.families, list)


def test_tags_entry_exact_shape():
    body = tags_response(models("meta-llama/Llama-3.1-8B-Instruct"), ModelMap(), modified_at=NOW)
    (entry,) = body["models"]
    assert entry == {
        "name": "meta-llama/Llama-3.1-8B-Instruct:latest",
        "model": "meta-llama/Llama-3.1-8B-Instruct:latest",
        "modified_at": "2023-11-14T22:13:20Z",
        "size": 0,
        "digest": hashlib.sha256(b"meta-llama/Llama-3.1-8B-Instruct").hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "",
            "quantization_level": "",
        },
        "capabilities": ["completion", "tools"],
    }


def test_tags_modified_at_falls_back_without_created():
    resp = {"data": [{"id": "m1"}]}
    (entry,) = tags_response(resp, ModelMap(), modified_at=NOW)["models"]
    assert entry["modified_at"] == NOW


@pytest.mark.parametrize(
    "created, expected",
    [
        (None, NOW),
        ("1700000000", NOW),
        (True, NOW),
        (0, NOW),
        (-5, NOW),
        (float("inf"), NOW),
        (10**400, NOW),
        (1700000000.7, "2023-11-14T22:13:20Z"),
        (1700000000000, "2023-11-14T22:13:20Z"),  # milliseconds
        (10**17, NOW),  # beyond year 9999 even as milliseconds
    ],
)
def test_modified_at_from_created(created, expected):
    resp = {"data": [{"id": "m1", "created": created}]}
    (entry,) = tags_response(resp, ModelMap(), modified_at=NOW)["models"]
    assert entry["modified_at"] == expected
    ListResponse.model_validate({"models": [entry]})


def test_tags_lists_aliases_with_their_own_digest():
    mm = ModelMap({"coder": "Qwen/Qwen2.5-Coder-7B", "ghost": "absent"})
    body = tags_response(models("Qwen/Qwen2.5-Coder-7B"), mm, modified_at=NOW)
    names = [m["name"] for m in body["models"]]
    assert names == ["coder:latest", "Qwen/Qwen2.5-Coder-7B:latest"]
    assert body["models"][0]["digest"] == digest("coder")
    assert body["models"][0]["digest"] != body["models"][1]["digest"]
    assert body["models"][0]["details"]["family"] == "qwen"
    ListResponse.model_validate(body)


def test_tags_skip_malformed_entries():
    resp = {"data": [{"id": "ok"}, {"id": 3}, {"name": "no-id"}, "junk", {"id": ""}, {"id": "ok"}]}
    body = tags_response(resp, ModelMap(), modified_at=NOW)
    assert [m["name"] for m in body["models"]] == ["ok:latest"]


def test_tags_keep_an_existing_tag_and_add_latest_otherwise():
    body = tags_response(models("m1", "qwen:7b", "openai/gpt-4o:free"), ModelMap(), modified_at=NOW)
    assert [m["name"] for m in body["models"]] == ["m1:latest", "qwen:7b", "openai/gpt-4o:free"]
    assert body["models"][0]["digest"] == digest("m1")


def test_tags_empty_list():
    assert tags_response({"data": []}, ModelMap(), modified_at=NOW) == {"models": []}


@pytest.mark.parametrize("resp", [{}, {"data": None}, {"data": {"id": "m"}}, [], "x", None, {"models": []}])
def test_tags_without_data_list_is_protocol_error(resp):
    with pytest.raises(UpstreamProtocolError):
        tags_response(resp, ModelMap(), modified_at=NOW)
    with pytest.raises(UpstreamProtocolError):
        backend_ids(resp)


def test_backend_ids_in_order_without_duplicates():
    assert backend_ids({"data": [{"id": "b"}, {"id": "a"}, {"id": "b"}, {"x": 1}]}) == ["b", "a"]


@pytest.mark.parametrize(
    "backend_id, family",
    [
        ("gpt-4o-mini", "gpt"),
        ("meta-llama/Meta-Llama-3-8B", "llama"),
        ("dolphin-mixtral-8x7b", "mixtral"),  # not "phi" although "dolphin" contains it
        ("microsoft/Phi-3-mini", "phi"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
        ("text-embedding-3-small", "bert"),  # embedding models without a known family
        ("BAAI/bge-m3", "bert"),
        ("acme-9000", "acme"),
        ("7", "unknown"),
    ],
)
def test_family_guess(backend_id, family):
    (entry,) = tags_response(models(backend_id), ModelMap(), modified_at=NOW)["models"]
    assert entry["details"]["family"] == family
    assert entry["details"]["families"] == [family]


# --- digest / capabilities -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["m1", "", "ünïcode/模型:latest", "a" * 1000])
def test_digest_is_64_hex_sha256_of_name(name):
    assert HEX64.match(digest(name))
    assert digest(name) == hashlib.sha256(name.encode()).hexdigest()


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


# --- show ------------------------------------------------------------------------------------


def test_show_parses_with_ollama_client_model():
    # Case 5.
    body = show_response("m1", "m1", {"id": "m1", "created": 1700000000}, modified_at=NOW)
    parsed = ShowResponse.model_validate(body)
    arch = parsed.modelinfo["general.architecture"]
    assert isinstance(parsed.modelinfo[f"{arch}.context_length"], int)
    assert "completion" in parsed.capabilities
    assert all(isinstance(getattr(parsed, f), str) for f in ("parameters", "template", "license", "modelfile"))
    assert parsed.modified_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_show_exact_shape():
    body = show_response("coder", "Qwen/Qwen2.5-Coder-7B", None, modified_at=NOW)
    assert body == {
        "modelfile": "FROM Qwen/Qwen2.5-Coder-7B",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "license": "",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "qwen",
            "families": ["qwen"],
            "parameter_size": "",
            "quantization_level": "",
        },
        "model_info": {
            "general.architecture": "qwen",
            "general.basename": "coder",
            "general.parameter_count": 0,
            "qwen.context_length": 4096,
        },
        "capabilities": ["completion", "tools"],
        "modified_at": NOW,
    }


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"max_model_len": 32768}, 32768),  # vLLM
        ({"context_length": 128000}, 128000),  # OpenRouter
        ({"meta": {"n_ctx_train": 8192}}, 8192),  # llama.cpp server
        ({"top_provider": {"context_length": 65536}}, 65536),
        ({"context_window": 131072}, 131072),  # Groq
        ({"max_model_len": 16384.0}, 16384),
        ({"max_model_len": 32768, "context_length": 1}, 32768),  # vLLM wins
        ({"max_model_len": None, "context_length": 2048}, 2048),
        ({"max_model_len": "32768"}, 4096),
        ({"max_model_len": 0}, 4096),
        ({"max_model_len": -1}, 4096),
        ({"max_model_len": True}, 4096),
        ({"max_model_len": 1.5}, 4096),
        ({"meta": "n_ctx_train"}, 4096),
        ({}, 4096),
        (None, 4096),
    ],
)
def test_show_context_length_sources(entry, expected):
    body = show_response("m", "gpt-x", entry, modified_at=NOW)
    assert body["model_info"]["gpt.context_length"] == expected
    ShowResponse.model_validate(body)


def test_show_context_length_default_is_configurable():
    body = show_response("m", "m", {}, modified_at=NOW, context_length_default=2048)
    assert body["model_info"]["m.context_length"] == 2048


def test_show_llamacpp_meta():
    entry = {"id": "x", "meta": {"n_ctx_train": 4096, "n_params": 7241732096, "n_embd": 4096}}
    info = show_response("x", "x", entry, modified_at=NOW)["model_info"]
    assert info["general.parameter_count"] == 7241732096
    assert info["x.embedding_length"] == 4096


def test_show_embedding_model():
    body = show_response("e1", "nomic-embed-text", {"id": "nomic-embed-text"}, modified_at=NOW)
    assert body["capabilities"] == ["embedding"]
    assert body["model_info"]["general.architecture"] == "nomic"
    ShowResponse.model_validate(body)


def test_show_basename_falls_back_to_backend_id():
    assert show_response("", "m", None, modified_at=NOW)["model_info"]["general.basename"] == "m"


# --- ps --------------------------------------------------------------------------------------


def test_ps_parses_with_ollama_client_model():
    # Case 37.
    expires = "2099-01-01T00:00:00Z"
    body = ps_response([("coder", "Qwen/Qwen2.5-Coder-7B", expires), ("m1:latest", "m1", expires)])
    parsed = ProcessResponse.model_validate(body)
    assert [m.name for m in parsed.models] == ["coder", "m1:latest"]
    first = body["models"][0]
    assert first["model"] == "coder"
    assert HEX64.match(first["digest"])
    assert first["size"] == 0 and first["size_vram"] == 0
    assert first["expires_at"] == expires
    assert first["details"]["family"] == "qwen"
    assert isinstance(first["context_length"], int)
    assert parsed.models[0].expires_at.year == 2099


def test_ps_empty():
    body = ps_response([])
    assert body == {"models": []}
    ProcessResponse.model_validate(body)


# --- pull ------------------------------------------------------------------------------------


def test_pull_stream():
    # Case 38: the stream ends with success.
    out = pull_response(True, "m1")
    assert out == [{"status": "pulling manifest"}, {"status": "verifying sha256 digest"}, {"status": "success"}]
    for item in out:
        ProgressResponse.model_validate(item)


def test_pull_non_stream():
    out = pull_response(False, "m1")
    assert out == {"status": "success"}
    assert ProgressResponse.model_validate(out).status == "success"


# --- /v1/models through the bridge -----------------------------------------------------------


def test_openai_models_adds_aliases():
    mm = ModelMap({"coder": "qwen-coder", "ghost": "absent"})
    resp = models("qwen-coder", "gpt-4o")
    out = openai_models_response(resp, mm)
    assert out["object"] == "list"
    assert [d["id"] for d in out["data"]] == ["coder", "qwen-coder", "gpt-4o"]
    alias = out["data"][0]
    assert alias == {"id": "coder", "object": "model", "created": 1700000000, "owned_by": "x"}
    assert resp["data"][0]["id"] == "qwen-coder"  # the backend body is not modified


def test_openai_models_keeps_vendor_extras_and_fills_object():
    resp = {"data": [{"id": "m", "max_model_len": 4096}]}
    (item,) = openai_models_response(resp, ModelMap())["data"]
    assert item == {"id": "m", "object": "model", "max_model_len": 4096}


def test_openai_models_without_data_is_protocol_error():
    with pytest.raises(UpstreamProtocolError):
        openai_models_response({"error": "x"}, ModelMap())
