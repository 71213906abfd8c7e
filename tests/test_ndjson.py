"""ndjson_line: one compact object, exactly one line for every client's splitter, never blank."""

from __future__ import annotations

import json

from httpx._decoders import LineDecoder
from hypothesis import given
from hypothesis import strategies as st

from bridge.ndjson import ndjson_line

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_line_is_one_complete_object_for_the_python_clients_splitter(obj):
    line = ndjson_line(obj)
    assert line.endswith(b"\n") and line.strip()
    assert line.count(b"\n") == 1
    # The official ollama client splits with httpx's LineDecoder (str.splitlines semantics).
    lines = LineDecoder().decode(line.decode("utf-8"))
    assert len(lines) == 1
    assert json.loads(lines[0]) == obj


def test_unicode_line_separators_are_escaped_not_raw():
    line = ndjson_line({"t": "héllo\n\u2028\u2029\x85🎉"})
    assert "\u2028".encode() not in line and "\x85".encode() not in line
    assert json.loads(line)["t"] == "héllo\n\u2028\u2029\x85🎉"


def test_what_the_fast_codec_refuses_is_still_encoded_like_before():
    # integers beyond 64 bits, lone surrogates (escaped) and non-string keys take the standard library's way
    big = {"n": 2**70, "s": "\ud800x", 1: "k"}
    line = ndjson_line(big)
    assert line == b'{"n":1180591620717411303424,"s":"\\ud800x","1":"k"}\n'
    assert json.loads(line) == {"n": 2**70, "s": "\ud800x", "1": "k"}
