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
    digest,
    openai_models_response,
    ps_response,
    pull_response,
    show_response,
    tags_response,
    template_for,
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
        "size": 16_000_000_000,  # estimate: 8B from the id, 16-bit weights (nothing says otherwise)
        "digest": hashlib.sha256(b"meta-llama/Llama-3.1-8B-Instruct").hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "8B",
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


# --- digest -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["m1", "", "ünïcode/模型:latest", "a" * 1000])
def test_digest_is_64_hex_sha256_of_name(name):
    assert HEX64.match(digest(name))
    assert digest(name) == hashlib.sha256(name.encode()).hexdigest()


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
        "template": template_for(["completion", "tools"]),
        "license": "",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "qwen",
            "families": ["qwen"],
            "parameter_size": "7B",
            "quantization_level": "",
        },
        "model_info": {
            "general.architecture": "qwen",
            "general.basename": "coder",
            "general.parameter_count": 7_000_000_000,
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
    # 7B from the id at 16 bits; the backend holds it all on its accelerator as far as we know.
    assert first["size"] == 14_000_000_000 and first["size_vram"] == first["size"]
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


# --- facts: backend metadata, mapping declarations, estimates --------------------------------

LLAMACPP_ENTRY = {
    "id": "qwen2.5-7b-instruct-q4_k_m.gguf", "object": "model", "owned_by": "llamacpp", "created": 1700000000,
    "meta": {"vocab_type": 2, "n_vocab": 152064, "n_ctx_train": 32768, "n_ctx": 8192, "n_embd": 3584,
             "n_params": 7615616512, "size": 4677120000, "ftype": "Q4_K - Medium"},
}


def test_llamacpp_meta_fills_every_field():
    entry = LLAMACPP_ENTRY
    body = show_response("qwen", entry["id"], entry, modified_at=NOW)
    assert body["details"]["parameter_size"] == "7.6B"  # Ollama's rendering of n_params
    assert body["details"]["quantization_level"] == "Q4_K_M"
    info = body["model_info"]
    assert info["general.parameter_count"] == 7615616512
    assert info["qwen.context_length"] == 8192  # what the server accepts per request, not n_ctx_train
    assert info["qwen.embedding_length"] == 3584 and info["qwen.vocab_size"] == 152064
    ShowResponse.model_validate(body)
    (tag,) = tags_response({"data": [entry]}, ModelMap(), modified_at=NOW)["models"]
    assert tag["size"] == 4677120000 and tag["details"]["parameter_size"] == "7.6B"
    (ps,) = ps_response([("qwen", entry["id"], "2099-01-01T00:00:00Z")], {entry["id"]: entry})["models"]
    assert ps["size"] == ps["size_vram"] == 4677120000 and ps["context_length"] == 8192
    ProcessResponse.model_validate({"models": [ps]})


def test_mapping_declarations_win_over_backend_and_estimates():
    declared = {"context_length": 16384, "parameter_size": "7B", "quantization_level": "Q8_0", "family": "llama",
                "capabilities": ["completion", "vision"], "size": 123, "license": "Apache-2.0",
                "embedding_length": 4096}
    body = show_response("q", LLAMACPP_ENTRY["id"], LLAMACPP_ENTRY, modified_at=NOW, declared=declared)
    assert body["details"]["family"] == "llama" and body["details"]["families"] == ["llama"]
    assert body["details"]["parameter_size"] == "7B" and body["details"]["quantization_level"] == "Q8_0"
    assert body["model_info"]["general.architecture"] == "llama"
    assert body["model_info"]["llama.context_length"] == 16384
    assert body["model_info"]["llama.embedding_length"] == 4096
    assert body["model_info"]["general.parameter_count"] == 7615616512  # the backend's exact count stays
    assert body["capabilities"] == ["completion", "vision"]
    assert ".Tools" not in body["template"]
    assert body["license"] == "Apache-2.0"
    (ps,) = ps_response([("q", "b", NOW)], {}, ModelMap({"q": {"model": "b", **declared}}))["models"]
    assert ps["size"] == 123 and ps["size_vram"] == 123 and ps["context_length"] == 16384


@pytest.mark.parametrize(
    "backend_id, size, quant",
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "8B", ""),
        ("qwen2.5:0.5b", "0.5B", ""),
        ("gemma-3-270m-it-Q8_0.gguf", "270M", "Q8_0"),
        ("Qwen/Qwen3-30B-A3B-AWQ", "30B", "AWQ"),  # total, not the active "A3B"
        ("mlx-community/Llama-3.2-3B-Instruct-4bit", "3B", "INT4"),
        ("llama3:70b-instruct-q4_K_M", "70B", "Q4_K_M"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "", ""),  # 8x7B is not 8B nor 7B
        ("gpt-4o", "", ""),
        ("model-7b-or-13b", "", ""),  # two sizes: no guess
        ("bartowski/gemma-2-9b-it-GGUF:IQ3_XXS", "9B", "IQ3_XXS"),
        ("Qwen2.5-7B-Instruct-fp16", "7B", "F16"),
    ],
)
def test_estimates_from_the_model_id(backend_id, size, quant):
    details = show_response("x", backend_id, None, modified_at=NOW)["details"]
    assert details["parameter_size"] == size and details["quantization_level"] == quant


# --- template and capabilities agree ----------------------------------------------------------

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def _template_says(template: str) -> set[str]:
    """Capabilities as Ollama infers them from a Go template (server/images.go): .Tools -> tools,
    .Suffix -> insert, .Thinking within a range over .Messages -> thinking."""
    actions = _ACTION.findall(template)
    says, blocks = set(), []
    for action in actions:
        head = action.split(" ", 1)[0]
        if re.search(r"(?<![\w)])\.Tools\b", action):
            says.add("tools")
        if re.search(r"(?<![\w)])\.Suffix\b", action):
            says.add("insert")
        if ".Thinking" in action and any(b.startswith("range .Messages") for b in blocks):
            says.add("thinking")
        if head in ("if", "range", "with"):
            blocks.append(action)
        elif head == "end":
            blocks.pop()  # an unbalanced template fails here
    assert not blocks, template  # every block closed
    return says


@pytest.mark.parametrize(
    "caps",
    [["completion"], ["completion", "tools"], ["completion", "tools", "thinking"], ["completion", "thinking"],
     ["completion", "insert"], ["completion", "tools", "vision", "thinking", "insert"], ["embedding"]],
)
def test_template_tells_what_capabilities_say(caps):
    template = template_for(caps)
    assert _template_says(template) == set(caps) & {"tools", "insert", "thinking"}
    if caps == ["embedding"]:
        assert template == "{{ .Prompt }}"
    else:
        assert ".Messages" in template


def test_show_template_follows_capabilities():
    assert ".Tools" in show_response("m", "gpt-4o", None, modified_at=NOW)["template"]
    embed_show = show_response("e", "nomic-embed-text", None, modified_at=NOW)
    assert embed_show["template"] == "{{ .Prompt }}" and embed_show["capabilities"] == ["embedding"]
    body = show_response("m", "m", None, modified_at=NOW, declared={"capabilities": ["completion"]})
    assert body["capabilities"] == ["completion"] and ".Tools" not in body["template"]


def test_digest_is_one_for_both_spellings_in_tags_and_ps():
    (tag,) = tags_response(models("m1"), ModelMap(), modified_at=NOW)["models"]
    (ps,) = ps_response([("m1:latest", "m1", NOW)])["models"]
    assert tag["digest"] == ps["digest"] == digest("m1")


def test_ps_without_listing_still_answers_with_estimates():
    (ps,) = ps_response([("llama3:latest", "meta-llama/Llama-3-8B", NOW)])["models"]
    assert ps["details"]["parameter_size"] == "8B" and ps["context_length"] == 4096
