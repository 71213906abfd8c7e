"""A fast fake OpenAI-compatible backend for benchmarks (plain WSGI; serve it with gunicorn gevent).

The model name sets the behaviour, so one backend serves every scenario and the bridge needs no
special configuration::

    fake-t<tokens>-d<delay_ms>[-l<latency_ms>]

``tokens`` content tokens, ``delay_ms`` between two tokens, ``latency_ms`` before the answer (or the
first token). Every content token is ``"<i>@<monotonic_ns> "``: the moment this process sent it,
on the machine-wide ``CLOCK_MONOTONIC``, so a client on the same host can measure each frame's
transit time directly and compare the bridge path with the direct path frame by frame.

Non-streamed answers and the fixed parts of streams are pre-serialised: the backend must never be
the bottleneck of what it measures (``perf.run`` measures its own ceiling too).

    gunicorn -k gevent -w 1 --worker-connections 4000 -b 127.0.0.1:PORT perf.fake_backend:app
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from functools import lru_cache

__all__ = ["MODELS", "app", "model_name", "parse_model"]

_MODEL = re.compile(r"^fake-t(\d{1,5})-d(\d{1,6})(?:-l(\d{1,6}))?$")
_CREATED = 1_735_689_600


def model_name(tokens: int, delay_ms: int = 0, latency_ms: int = 0) -> str:
    return f"fake-t{tokens}-d{delay_ms}" + (f"-l{latency_ms}" if latency_ms else "")


#: What ``/v1/models`` lists (the bridge answers 404 for a name the backend does not list).
MODELS = (
    model_name(8),          # non-streamed answers, fast streams
    model_name(16),         # streams/s
    model_name(64, 20),     # paced stream (onthebench: 64 deltas 20 ms apart)
    model_name(10, 500),    # slow streams for the 1,000-concurrent test
    model_name(4, 200),     # smoke test
    model_name(64), model_name(256), model_name(1024), model_name(4096),  # CPU per token vs length
    model_name(6, 1000),    # long-open streams: memory per open stream
)


@lru_cache(maxsize=64)
def parse_model(name: str) -> tuple[int, float, float] | None:
    """(tokens, delay_s, latency_s) for a fake model name, else None."""
    m = _MODEL.match(name or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)) / 1000.0, int(m.group(3) or 0) / 1000.0


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@lru_cache(maxsize=64)
def _nonstream_body(model: str, tokens: int) -> bytes:
    text = "".join(f"{i}@0 " for i in range(tokens))
    return json.dumps({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": _CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens},
    }, separators=(",", ":")).encode()


@lru_cache(maxsize=64)
def _stream_parts(model: str, tokens: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(first role event, token event prefix, token event suffix, final events)."""
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": _CREATED, "model": model}
    role = _event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]})
    marker = "\x00MARK\x00"
    tok = _event({**head, "choices": [{"index": 0, "delta": {"content": marker}, "finish_reason": None}]})
    prefix, suffix = tok.split(marker.encode().replace(b"\x00", b"\\u0000"))
    final = (_event({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
             + _event({**head, "choices": [],
                       "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}})
             + b"data: [DONE]\n\n")
    return role, prefix, suffix, final


def _models_body() -> bytes:
    return json.dumps({"object": "list", "data": [
        {"id": m, "object": "model", "created": _CREATED, "owned_by": "perf"} for m in MODELS]}).encode()


_MODELS_BODY = _models_body()


def _respond(start_response, status: str, body: bytes, ctype: str = "application/json") -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _stream(model: str, tokens: int, delay_s: float, latency_s: float) -> Iterator[bytes]:
    role, prefix, suffix, final = _stream_parts(model, tokens)
    if latency_s:
        time.sleep(latency_s)
    yield role
    for i in range(tokens):
        if i and delay_s:
            time.sleep(delay_s)
        yield b"%s%d@%d %s" % (prefix, i, time.monotonic_ns(), suffix)
    yield final


def app(environ: dict, start_response) -> list[bytes] | Iterator[bytes]:
    """The WSGI entry point."""
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "GET" and path in ("/v1/models", "/models"):
        return _respond(start_response, "200 OK", _MODELS_BODY)
    if method == "GET" and path == "/health":
        return _respond(start_response, "200 OK", b"ok", "text/plain")
    if method != "POST" or path not in ("/v1/chat/completions", "/chat/completions"):
        return _respond(start_response, "404 Not Found", b'{"error":{"message":"no such route"}}')
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        model = body["model"]
    except (ValueError, KeyError, TypeError):
        return _respond(start_response, "400 Bad Request", b'{"error":{"message":"bad request"}}')
    spec = parse_model(model) if isinstance(model, str) else None
    if spec is None:
        return _respond(start_response, "404 Not Found",
                        b'{"error":{"message":"The model does not exist","type":"not_found_error"}}')
    tokens, delay_s, latency_s = spec
    if not body.get("stream"):
        if latency_s:
            time.sleep(latency_s)
        return _respond(start_response, "200 OK", _nonstream_body(model, tokens))
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    return _stream(model, tokens, delay_s, latency_s)
