"""Ollama options -> OpenAI sampling fields (reference 2.10, cases 15 and 16)."""

from __future__ import annotations

import pytest

from bridge.errors import ClientRequestError
from bridge.translate.options import openai_sampling


def test_none_and_empty_give_nothing():
    assert openai_sampling(None) == {}
    assert openai_sampling({}) == {}


def test_case_15_portable_options_forwarded():
    out = openai_sampling({"num_predict": 5, "stop": ["\n"], "temperature": 0, "seed": 1, "top_p": 0.5})
    assert out == {"max_tokens": 5, "stop": ["\n"], "temperature": 0, "seed": 1, "top_p": 0.5}


def test_case_16_load_time_knobs_dropped_and_unlimited_num_predict_omitted():
    assert openai_sampling({"num_ctx": 8192, "num_gpu": 1, "top_k": -1, "num_predict": -1}) == {}


@pytest.mark.parametrize("value", [0, -1, -2])
def test_non_positive_num_predict_omitted(value):
    assert "max_tokens" not in openai_sampling({"num_predict": value})


def test_penalties_forwarded():
    out = openai_sampling({"presence_penalty": 0.5, "frequency_penalty": -1})
    assert out == {"presence_penalty": 0.5, "frequency_penalty": -1}


def test_stop_string_becomes_list():
    assert openai_sampling({"stop": "END"}) == {"stop": ["END"]}


def test_empty_stop_values_omitted():
    assert openai_sampling({"stop": ""}) == {}
    assert openai_sampling({"stop": []}) == {}
    assert openai_sampling({"stop": ["", "x"]}) == {"stop": ["x"]}


def test_integral_floats_accepted_for_integers():
    assert openai_sampling({"num_predict": 5.0, "seed": 3.0}) == {"max_tokens": 5, "seed": 3}
    assert isinstance(openai_sampling({"seed": 3.0})["seed"], int)


def test_null_values_treated_as_unset():
    assert openai_sampling({"temperature": None, "stop": None, "seed": None}) == {}


def test_everything_else_dropped():
    options = {
        "top_k": 40, "min_p": 0.1, "typical_p": 1, "repeat_penalty": 1.1, "repeat_last_n": 64,
        "mirostat": 0, "num_keep": 5, "num_batch": 2, "main_gpu": 0, "low_vram": False,
        "use_mmap": True, "num_thread": 8, "penalize_newline": True, "tfs_z": 1, "whatever": "x",
    }
    assert openai_sampling(options) == {}


@pytest.mark.parametrize(
    "options, field",
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": [1]}, "top_p"),
        ({"presence_penalty": "1"}, "presence_penalty"),
        ({"frequency_penalty": {}}, "frequency_penalty"),
        ({"num_predict": "5"}, "num_predict"),
        ({"num_predict": 1.5}, "num_predict"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"stop": 5}, "stop"),
        ({"stop": ["a", 1]}, "stop"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": float("inf")}, "top_p"),
    ],
)
def test_wrong_types_rejected_naming_the_field(options, field):
    with pytest.raises(ClientRequestError) as err:
        openai_sampling(options)
    assert field in err.value.message
    assert err.value.status == 400


@pytest.mark.parametrize("options", ["x", [], 5, True])
def test_options_not_an_object_rejected(options):
    with pytest.raises(ClientRequestError, match="options"):
        openai_sampling(options)
