"""translate/reasoning.py: reasoning on/off in each THINK_CONTROL spelling."""

from __future__ import annotations

import pytest

from bridge.translate.reasoning import reasoning_controls


def test_reasoning_controls_rejects_unknown_effort():
    with pytest.raises(ValueError):
        reasoning_controls("extreme", "both")
