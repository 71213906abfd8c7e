"""translate/anthropic_count.py: the count_tokens estimate of a Messages request."""

from __future__ import annotations

import pytest

from bridge.errors import ClientRequestError
from bridge.translate.anthropic_count import count_tokens

USER = [{"role": "user", "content": "hi"}]


def test_count_tokens_estimate():
    base = count_tokens({"messages": USER})
    assert base == 1 + 4  # "hi": ceil(2 / 4) + 4 per message
    assert count_tokens({"messages": USER, "system": "x" * 400}) == base + 100 + 4
    image = {"type": "image", "source": {"type": "url", "url": "u"}}
    assert count_tokens({"messages": [{"role": "user", "content": [image]}]}) == 1600 + 4
    with pytest.raises(ClientRequestError):
        count_tokens({"messages": "hi"})
