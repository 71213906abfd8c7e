"""translate/short_circuit.py: requests Ollama answers without inference (reference cases 30-32)."""

from __future__ import annotations

import pytest

from bridge.translate.short_circuit import load_response, short_circuit

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"
CREATED = "2025-07-07T20:22:19.184789Z"
USER = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- short circuits (cases 30-32)


@pytest.mark.parametrize("body", [{}, {"prompt": ""}, {"prompt": None}, {"prompt": "", "images": [PNG]}])
def test_case_30_generate_empty_prompt_is_load(body):
    assert short_circuit("generate", {"model": "m1", **body}) == "load"


@pytest.mark.parametrize("keep_alive", [0, 0.0, "0", "0s", "0m", "0h", "0ms", "0h0m0s", " 0 "])
def test_case_31_keep_alive_zero_is_unload(keep_alive):
    assert short_circuit("generate", {"model": "m1", "keep_alive": keep_alive}) == "unload"
    assert short_circuit("chat", {"model": "m1", "messages": [], "keep_alive": keep_alive}) == "unload"


@pytest.mark.parametrize("keep_alive", [None, 5, -1, "5m", "-1", "1h30m", False, "abc"])
def test_nonzero_keep_alive_is_load(keep_alive):
    assert short_circuit("generate", {"model": "m1", "keep_alive": keep_alive}) == "load"


def test_case_32_chat_empty_messages_is_load():
    assert short_circuit("chat", {"model": "m1", "messages": []}) == "load"
    assert short_circuit("chat", {"model": "m1"}) == "load"


def test_real_requests_not_short_circuited():
    assert short_circuit("chat", {"model": "m1", "messages": USER, "keep_alive": 0}) is None
    assert short_circuit("generate", {"model": "m1", "prompt": "hi", "keep_alive": 0}) is None
    # Wrong types are left for the request translators to reject with a 400.
    assert short_circuit("generate", {"model": "m1", "prompt": 5}) is None
    assert short_circuit("chat", {"model": "m1", "messages": "x"}) is None


def test_short_circuit_rejects_unknown_kind():
    with pytest.raises(ValueError):
        short_circuit("embed", {})


def test_load_response_shapes():
    chat_load = load_response("chat", model="m1:latest", created_at=CREATED, done_reason="load")
    assert chat_load == {"model": "m1:latest", "created_at": CREATED, "message": {"role": "assistant", "content": ""},
                         "done": True, "done_reason": "load"}
    gen_unload = load_response("generate", model="m1", created_at=CREATED, done_reason="unload")
    assert gen_unload == {"model": "m1", "created_at": CREATED, "response": "", "done": True,
                          "done_reason": "unload", "context": []}
