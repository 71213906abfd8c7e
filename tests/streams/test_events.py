"""The named-event pump (Anthropic / Responses) against a fake backend body."""

from __future__ import annotations

from bridge.errors import UpstreamProtocolError
from bridge.streams.events import event_stream, sse_frame
from bridge.translate.anthropic_stream import MessagesStream
from tests.streams.fakes import FakeBody, FakeReport, chunk, sse


def names(writes: list[bytes]) -> list[str]:
    return [line[len(b"event: "):].decode() for w in writes for line in w.split(b"\n") if line.startswith(b"event: ")]


def run(body: FakeBody) -> tuple[list[bytes], FakeReport, MessagesStream]:
    report = FakeReport()
    translator = MessagesStream(message_id="msg_1", model="m")
    writes = list(event_stream(body, translator, report,
                               on_error=lambda message, exc: translator.error(message, exc.status)))
    return writes, report, translator


def test_sse_frame_is_one_named_event():
    assert sse_frame(("ping", {"type": "ping"})) == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_complete_stream_ends_with_message_stop_and_releases():
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    body = FakeBody([chunk("Hi"), chunk(" there"), chunk(finish="stop", usage=usage) + sse("[DONE]")])
    writes, report, _ = run(body)
    assert writes[0] == b""
    got = names(writes)
    assert got[0] == "message_start" and got[-1] == "message_stop" and "content_block_delta" in got
    assert report.first_tokens == 1 and report.tokens == (3, 2)
    assert body.released == 1 and body.closed == 0


def test_failure_mid_stream_is_one_error_event_then_nothing():
    body = FakeBody([chunk("Hi")], fail=UpstreamProtocolError("backend connection broke mid-stream"))
    writes, report, _ = run(body)
    got = names(writes)
    assert got[-1] == "error" and got.count("error") == 1 and "message_stop" not in got
    assert report.outcome == "protocol_error" and body.closed == 1 and body.released == 0
