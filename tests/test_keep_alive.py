"""keep_alive parsed as Ollama does it: seconds or Go durations, negative = forever, else a 400."""

from __future__ import annotations

import pytest

from bridge.errors import ClientRequestError
from bridge.keep_alive import DEFAULT_KEEP_ALIVE_S, FOREVER, parse_keep_alive


@pytest.mark.parametrize(
    "value, seconds",
    [(None, None), (0, 0.0), (0.0, 0.0), ("0", 0.0), ("0s", 0.0), ("0h0m0s", 0.0), (300, 300.0), (1.5, 1.5),
     ("5m", 300.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("250ms", 0.25), ("10µs", 1e-5), ("+5m", 300.0),
     (-1, FOREVER), ("-1m", FOREVER), ("-1", FOREVER), ("300", 300.0)],
)
def test_keep_alive_as_ollama_parses_it(value, seconds):
    assert parse_keep_alive(value) == (seconds if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize("value", [True, False, [], {}, {"s": 1}, "", "abc", "5x", "m5", "5 m", "--5m"])
def test_keep_alive_of_a_wrong_type_or_form_is_400(value):
    with pytest.raises(ClientRequestError) as info:
        parse_keep_alive(value)
    assert info.value.status == 400 and "keep_alive" in str(info.value)


def test_the_default_is_five_minutes_and_forever_is_infinite():
    assert DEFAULT_KEEP_ALIVE_S == 300.0 and FOREVER == float("inf")

