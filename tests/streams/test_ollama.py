"""The Ollama NDJSON pump against a fake backend body: one write per read, one final line, the
connection released only after a complete answer."""

from __future__ import annotations

import json

from bridge.clock import RequestClock
from bridge.errors import UpstreamTimeout
from bridge.streams.ollama import ollama_stream
from bridge.translate.stream import StreamTranslator
from tests.streams.fakes import FakeBody, FakeReport, chunk, sse


def run(body: FakeBody, report: FakeReport | None = None) -> tuple[list[bytes], FakeReport]:
    report = report or FakeReport()
    translator = StreamTranslator("chat", model="m", created_at=lambda: "2026-01-01T00:00:00Z", keep_thinking=True)
    clock = RequestClock()
    clock.mark_sent()
    return list(ollama_stream(body, translator, report, clock)), report


def lines(writes: list[bytes]) -> list[dict]:
    return [json.loads(line) for w in writes for line in w.splitlines() if line]


def test_headers_first_then_one_write_per_read_and_done_line():
    usage = {"prompt_tokens": 5, "completion_tokens": 2}
    body = FakeBody([chunk("Hel") + chunk("lo"), chunk(finish="stop") + chunk(usage=usage) + sse("[DONE]")])
    writes, report = run(body)
    assert writes[0] == b""  # status line and headers go out before any token
    assert len(writes) == 3  # the two tokens of the first read in one write; done in the last
    out = lines(writes)
    assert [o["message"]["content"] for o in out[:-1]] == ["Hel", "lo"]
    final = out[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["prompt_eval_count"] == 5 and final["eval_count"] == 2
    assert all(final[k] >= 1 for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"))
    assert report.first_tokens == 1 and report.tokens == (5, 2) and report.outcome is None
    assert body.released == 1 and body.closed == 0  # complete: the connection goes back to the pool


def test_tokens_in_the_same_read_as_done_share_its_write():
    writes, _ = run(FakeBody([chunk("a") + chunk(finish="stop") + sse("[DONE]")]))
    assert len(writes) == 2 and [o["done"] for o in lines(writes)] == [False, True]


def test_backend_failure_mid_stream_is_one_error_line_and_a_closed_connection():
    body = FakeBody([chunk("partial")], fail=UpstreamTimeout("backend sent nothing for 2 s mid-stream"))
    writes, report = run(body)
    out = lines(writes)
    assert out[-1] == {"error": "backend sent nothing for 2 s mid-stream"}
    assert [o.get("done") for o in out[:-1]] == [False]
    assert report.outcome == "timeout" and report.tokens == (None, 1)
    assert body.closed == 1 and body.released == 0


def test_stream_cut_before_finish_is_a_protocol_error():
    body = FakeBody([chunk("a")])
    writes, report = run(body)
    assert "error" in lines(writes)[-1] and report.outcome == "protocol_error"
    assert body.closed == 1


def test_error_message_from_the_backend_is_redacted():
    err = sse({"error": {"message": "bad key sk-secret-1", "type": "auth"}})
    body = FakeBody([err], secret="sk-secret-1")
    writes, _ = run(body)
    message = lines(writes)[-1]["error"]
    assert "sk-secret-1" not in message and "[redacted]" in message


def test_client_gone_closes_the_backend_connection():
    body = FakeBody([chunk("a"), chunk("b"), chunk(finish="stop") + sse("[DONE]")])
    gen = ollama_stream(body, StreamTranslator("chat", model="m", created_at=lambda: "t", keep_thinking=True),
                        FakeReport(), RequestClock())
    next(gen), next(gen)
    gen.close()  # what gunicorn does when the client disconnects
    assert body.closed == 1 and body.released == 0
