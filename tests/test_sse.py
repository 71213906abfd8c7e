"""SSEDecoder: events come out whole and at once, whatever the read boundaries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sse import SSEDecoder, SSEEvent

STREAM = (
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b": keep-alive comment\n\n"
    b'data: {"choices":[{"delta":{"content":"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x8e\x89"}}]}\r\n\r\n'
    b"event: error\n"
    b'data: {"error":{"message":"boom"}}\n\n'
    b'data:{"no":"space"}\r\r'
    b"data: line one\ndata: line two\n\n"
    b'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent(None, '{"choices":[{"delta":{"role":"assistant","content":""}}]}'),
    SSEEvent(None, '{"choices":[{"delta":{"content":"héllo ✓ 🎉"}}]}'),
    SSEEvent("error", '{"error":{"message":"boom"}}'),
    SSEEvent(None, '{"no":"space"}'),
    SSEEvent(None, "line one\nline two"),
    SSEEvent(None, '{"choices":[],"usage":{"prompt_tokens":3}}'),
    SSEEvent(None, "[DONE]"),
]


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events + decoder.close()


def test_whole_stream_in_one_read():
    assert decode([STREAM]) == EXPECTED


def test_split_at_every_byte_offset():
    for cut in range(len(STREAM) + 1):
        assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_split_at_every_pair_of_offsets_near_multibyte_characters():
    start = STREAM.index(b"h\xc3\xa9llo")
    for a in range(start, start + 20):
        for b in range(a, start + 24):
            assert decode([STREAM[:a], STREAM[a:b], STREAM[b:]]) == EXPECTED, (a, b)


def test_one_byte_at_a_time():
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_event_is_handed_on_the_moment_its_blank_line_arrives():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a":1}\n') == []
    assert decoder.feed(b"\n") == [SSEEvent(None, '{"a":1}')]


def test_crlf_split_between_reads_is_one_line_break():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == [SSEEvent(None, "x")]
    assert decoder.feed(b"\ndata: y\n\n") == [SSEEvent(None, "y")]


def test_last_event_without_blank_line_is_flushed_on_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.close() == [SSEEvent(None, "tail")]


def test_garbage_lines_do_not_raise():
    events = decode([b"\xff\xfe garbage\n", b"data: \xff\n\n", b"retry: 10\nid: 3\n\n"])
    assert events == [SSEEvent(None, "\ufffd")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_yields_the_same_events(cuts):
    bounds = sorted(set(cuts))
    pieces, prev = [], 0
    for cut in bounds:
        pieces.append(STREAM[prev:cut])
        prev = cut
    pieces.append(STREAM[prev:])
    assert decode(pieces) == EXPECTED
