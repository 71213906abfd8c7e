"""/api/embed and /api/embeddings <-> /v1/embeddings."""

from __future__ import annotations

import base64
import struct

import pytest
from ollama._types import EmbeddingsResponse, EmbedResponse

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.embed import (
    embed_empty_response,
    embed_request,
    embed_response,
    embeddings_request,
    embeddings_response,
)


def openai_resp(*vectors, indices=None, usage=True):
    data = []
    for pos, vec in enumerate(vectors):
        item = {"object": "embedding", "embedding": vec}
        if indices is not False:
            item["index"] = indices[pos] if indices else pos
        data.append(item)
    resp = {"object": "list", "data": data, "model": "backend-e"}
    if usage:
        resp["usage"] = {"prompt_tokens": 7, "total_tokens": 7}
    return resp


def b64(values):
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


# --- embed_request ---------------------------------------------------------------------------


def test_list_input_forwarded_with_float_encoding():
    # Case 33: the mock must see encoding_format float.
    out = embed_request({"model": "e1", "input": ["a", "b"]}, "backend-e")
    assert out == {"model": "backend-e", "input": ["a", "b"], "encoding_format": "float"}


def test_string_input_becomes_one_item_list():
    out = embed_request({"model": "e1", "input": "a"}, "backend-e")
    assert out["input"] == ["a"]


def test_dimensions_forwarded():
    # Case 34.
    out = embed_request({"model": "e1", "input": "a", "dimensions": 64}, "backend-e")
    assert out["dimensions"] == 64


@pytest.mark.parametrize("dimensions", [0, -1, 1.5, "64", True])
def test_bad_dimensions_is_400(dimensions):
    with pytest.raises(ClientRequestError):
        embed_request({"input": "a", "dimensions": dimensions}, "b")


@pytest.mark.parametrize("truncate", [True, False, None])
def test_truncate_accepted_and_not_forwarded(truncate):
    out = embed_request({"input": "a", "truncate": truncate}, "b")
    assert "truncate" not in out


def test_truncate_wrong_type_is_400():
    with pytest.raises(ClientRequestError):
        embed_request({"input": "a", "truncate": "yes"}, "b")


@pytest.mark.parametrize("value", [1, 1.5, True, {"a": 1}, ["a", 1], [["a"]], [None]])
def test_invalid_input_type_is_400(value):
    with pytest.raises(ClientRequestError) as info:
        embed_request({"input": value}, "b")
    assert info.value.message == "invalid input type"
    assert info.value.status == 400


@pytest.mark.parametrize("body", [{"input": ""}, {"input": []}, {"model": "e1"}, {"input": None}])
def test_empty_input_means_no_backend_call(body):
    # Case 35: the caller answers without the backend.
    assert embed_request(body, "b") is None


def test_empty_input_with_bad_dimensions_still_400():
    with pytest.raises(ClientRequestError):
        embed_request({"input": [], "dimensions": -3}, "b")


def test_options_and_keep_alive_not_forwarded():
    out = embed_request({"input": "a", "options": {"temperature": 1}, "keep_alive": "5m"}, "b")
    assert set(out) == {"model", "input", "encoding_format"}


@pytest.mark.parametrize("body", [["a"], "a", None])
def test_non_object_body_is_400(body):
    with pytest.raises(ClientRequestError):
        embed_request(body, "b")
    with pytest.raises(ClientRequestError):
        embeddings_request(body, "b")


# --- embed_response --------------------------------------------------------------------------


def test_embed_response_shape_and_client_parse():
    out = embed_response(openai_resp([0.1, 0.2], [0.3, 0.4]), model="e1", total_ns=1500, load_ns=10)
    assert out == {
        "model": "e1",
        "embeddings": [[0.1, 0.2], [0.3, 0.4]],
        "total_duration": 1500,
        "load_duration": 10,
        "prompt_eval_count": 7,
    }
    parsed = EmbedResponse.model_validate(out)
    assert len(parsed.embeddings) == 2 and parsed.prompt_eval_count == 7


def test_embed_response_sorted_by_index():
    resp = openai_resp([2.0], [0.0], [1.0], indices=[2, 0, 1])
    out = embed_response(resp, model="e1", total_ns=1, load_ns=0)
    assert out["embeddings"] == [[0.0], [1.0], [2.0]]


def test_missing_index_keeps_backend_order():
    resp = openai_resp([1.0], [2.0], indices=False)
    assert embed_response(resp, model="e1", total_ns=1, load_ns=0)["embeddings"] == [[1.0], [2.0]]


def test_missing_usage_is_fine():
    out = embed_response(openai_resp([1.0], usage=False), model="e1", total_ns=1, load_ns=0)
    assert "prompt_eval_count" not in out
    EmbedResponse.model_validate(out)


@pytest.mark.parametrize("usage", [None, "x", {"prompt_tokens": None}, {"prompt_tokens": 1.5}, {}])
def test_odd_usage_is_ignored(usage):
    resp = openai_resp([1.0])
    resp["usage"] = usage
    assert "prompt_eval_count" not in embed_response(resp, model="e1", total_ns=1, load_ns=0)


def test_integral_float_usage_becomes_int():
    resp = openai_resp([1.0])
    resp["usage"] = {"prompt_tokens": 3.0}
    assert embed_response(resp, model="e1", total_ns=1, load_ns=0)["prompt_eval_count"] == 3


def test_durations_are_ints():
    out = embed_response(openai_resp([1.0]), model="e1", total_ns=12.0, load_ns=0.0)
    assert type(out["total_duration"]) is int and type(out["load_duration"]) is int


def test_int_components_become_floats():
    out = embed_response(openai_resp([1, 0]), model="e1", total_ns=1, load_ns=0)
    assert out["embeddings"] == [[1.0, 0.0]]
    assert all(type(x) is float for x in out["embeddings"][0])


def test_base64_embedding_decoded_as_little_endian_float32():
    values = [0.5, -1.25, 3.0]
    resp = openai_resp(b64(values))
    out = embed_response(resp, model="e1", total_ns=1, load_ns=0)
    assert out["embeddings"] == [values]
    EmbedResponse.model_validate(out)


def test_empty_data_gives_empty_embeddings():
    out = embed_response({"data": []}, model="e1", total_ns=1, load_ns=0)
    assert out["embeddings"] == []


@pytest.mark.parametrize(
    "resp",
    [
        {},
        {"data": None},
        {"data": {"0": [1.0]}},
        [],
        "oops",
        {"data": ["x"]},
        {"data": [{"index": 0}]},
        {"data": [{"embedding": None}]},
        {"data": [{"embedding": ["a"]}]},
        {"data": [{"embedding": [True]}]},
        {"data": [{"embedding": [10**400]}]},
        {"data": [{"embedding": [float("nan")]}]},
        {"data": [{"embedding": "not base64!"}]},
        {"data": [{"embedding": base64.b64encode(b"abc").decode()}]},  # not a multiple of 4 bytes
        {"data": [{"embedding": base64.b64encode(struct.pack("<f", float("inf"))).decode()}]},
    ],
)
def test_unusable_backend_data_is_protocol_error(resp):
    with pytest.raises(UpstreamProtocolError):
        embed_response(resp, model="e1", total_ns=1, load_ns=0)


def test_embed_empty_response():
    out = embed_empty_response("e1")
    assert out == {"model": "e1", "embeddings": []}
    assert EmbedResponse.model_validate(out).embeddings == []


# --- legacy /api/embeddings ------------------------------------------------------------------


def test_embeddings_request():
    out = embeddings_request({"model": "e1", "prompt": "a", "options": {}}, "backend-e")
    assert out == {"model": "backend-e", "input": ["a"], "encoding_format": "float"}


@pytest.mark.parametrize("body", [{"prompt": ""}, {"model": "e1"}, {"prompt": None}])
def test_embeddings_empty_prompt_means_no_backend_call(body):
    assert embeddings_request(body, "b") is None


@pytest.mark.parametrize("prompt", [["a", "b"], 1, {"a": 1}])
def test_embeddings_prompt_must_be_string(prompt):
    with pytest.raises(ClientRequestError):
        embeddings_request({"prompt": prompt}, "b")


def test_embeddings_response_flat_list():
    # Case 36.
    out = embeddings_response(openai_resp([0.25, 0.5]))
    assert out == {"embedding": [0.25, 0.5]}
    assert list(EmbeddingsResponse.model_validate(out).embedding) == [0.25, 0.5]


def test_embeddings_response_takes_lowest_index():
    out = embeddings_response(openai_resp([9.0], [1.0], indices=[1, 0]))
    assert out == {"embedding": [1.0]}


def test_embeddings_response_base64():
    assert embeddings_response(openai_resp(b64([1.5])))["embedding"] == [1.5]


@pytest.mark.parametrize("resp", [{"data": []}, {}, {"data": [{"embedding": "!!"}]}])
def test_embeddings_response_unusable(resp):
    with pytest.raises(UpstreamProtocolError):
        embeddings_response(resp)
