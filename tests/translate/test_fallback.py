"""translate/fallback.py: which bridge-added field a backend refused, and the bounded memory of it."""

from __future__ import annotations

import pytest

from bridge.translate.fallback import ADDED_PARAMS, DroppedParams, rejected_param

SENT = ("reasoning_effort", "stream_options")


@pytest.mark.parametrize("message, param, value_only", [
    ("Unrecognized request argument supplied: reasoning_effort", "reasoning_effort", False),
    ("Unsupported parameter: 'reasoning_effort' is not supported with this model.", "reasoning_effort", False),
    ("Unknown parameter: 'stream_options'.", "stream_options", False),
    ("[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), 'msg': 'Extra inputs are not permitted'}]",
     "stream_options", False),
    ("Unsupported value: 'reasoning_effort' does not support 'none' with this model. Supported values are: "
     "'low', 'medium', and 'high'.", "reasoning_effort", True),
    ("This model does not support reasoning", "reasoning_effort", False),
    ("thinking is not supported for this model", "reasoning_effort", False),
])
def test_refusals_recognised(message, param, value_only):
    found = rejected_param(400, message, SENT)
    assert found is not None and (found.param, found.value_only) == (param, value_only)


@pytest.mark.parametrize("status, message, sent", [
    (400, "messages: too long", SENT),
    (400, "Unrecognized request argument supplied: top_k", SENT),  # not one the bridge added
    (400, "Unrecognized request argument supplied: reasoning_effort", ("stream_options",)),  # not sent
    (500, "Unrecognized request argument supplied: reasoning_effort", SENT),  # not a refusal status
    (400, "reasoning_effort_extra is unknown", SENT),  # a longer name is not this one
    (400, "", SENT),
    (400, None, SENT),
    (400, "The model `x` does not exist", SENT),
])
def test_other_errors_are_not_refusals(status, message, sent):
    assert rejected_param(status, message, sent) is None


def test_422_counts_and_cannot_think_needs_a_thinking_field():
    assert rejected_param(422, "unexpected keyword argument 'stream_options'", SENT).param == "stream_options"
    assert rejected_param(400, "model does not support thinking", ("stream_options",)) is None


def test_dropped_params_bounded_lru():
    table = DroppedParams(max_entries=3)
    for i in range(5):
        table.add(("b", f"m{i}"), "reasoning_effort")
    assert len(table) == 3
    assert table.get(("b", "m0")) == frozenset() and table.get(("b", "m4")) == {"reasoning_effort"}
    table.get(("b", "m2"))  # used: kept over m3
    table.add(("b", "m2"), "stream_options")
    table.add(("b", "m5"), "stream_options")
    assert table.get(("b", "m2")) == {"reasoning_effort", "stream_options"}
    assert table.get(("b", "m3")) == frozenset()
    with pytest.raises(ValueError):
        table.add(("b", "m1"), "temperature")  # only the closed set
    assert set(ADDED_PARAMS) == {"reasoning_effort", "chat_template_kwargs", "stream_options"}
