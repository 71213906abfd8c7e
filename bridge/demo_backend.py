"""The built-in demo backend: deterministic OpenAI-compatible answers, served in-process.

When no backend URL is configured the bridge still works end to end: the app factory gives the
backend pool :func:`demo_transport`, which mounts :class:`DemoAdapter` for the demo host, so
requests take exactly the production path (translation, SSE decoding, streaming, metrics) but are
answered by :class:`DemoBackend`, a small WSGI app, without a socket. Streams are paced
(``token_delay_s`` between tokens) so they look like a real model. The same WSGI app can be
served over HTTP for tests and benchmarks: ``DemoBackend(0.0)``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Iterable, Iterator

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .config import DEMO_BACKEND_URL, Settings
from .transport import RequestsTransport

__all__ = ["DemoAdapter", "DemoBackend", "DEMO_MODELS", "demo_transport"]

DEMO_MODELS = ("demo", "demo-embed")
_CREATED = 1_735_689_600  # 2025-01-01, fixed so answers are deterministic
_EMBED_DIM = 16


def answer_text(prompt: str) -> str:
    """The deterministic reply to a prompt."""
    said = " ".join(prompt.split()[:12]) or "nothing"
    return f"Hello from the bridge demo backend! You said: {said}"


def _tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def _count(text: str) -> int:
    return max(1, len(text.split()))


def _embedding(text: str, dim: int) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dim)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]


def _error(start_response, status: str, message: str, kind: str = "invalid_request_error") -> list[bytes]:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class DemoBackend:
    """WSGI app speaking a small, deterministic subset of the OpenAI API."""

    def __init__(self, token_delay_s: float = 0.02) -> None:
        self.token_delay_s = token_delay_s

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/v1/"):
            path = path[3:]
        if method == "GET" and path == "/models":
            return self._json(start_response, {"object": "list", "data": [_model(m) for m in DEMO_MODELS]})
        if method == "GET" and path.startswith("/models/"):
            model = path[len("/models/"):]
            if model not in DEMO_MODELS:
                return _error(start_response, "404 Not Found", f"The model `{model}` does not exist", "not_found_error")
            return self._json(start_response, _model(model))
        if method != "POST" or path not in ("/chat/completions", "/completions", "/embeddings"):
            return _error(start_response, "404 Not Found", f"no route {method} {path}", "not_found_error")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"null")
        except ValueError:
            return _error(start_response, "400 Bad Request", "body is not valid JSON")
        if not isinstance(body, dict):
            return _error(start_response, "400 Bad Request", "body must be a JSON object")
        model = body.get("model")
        if model not in DEMO_MODELS:
            return _error(start_response, "404 Not Found", f"The model `{model}` does not exist", "not_found_error")
        if path == "/embeddings":
            return self._embeddings(start_response, body)
        return self._completion(start_response, body, chat=path == "/chat/completions")

    def _json(self, start_response, obj: dict) -> list[bytes]:
        data = json.dumps(obj).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def _embeddings(self, start_response, body: dict) -> list[bytes]:
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return _error(start_response, "400 Bad Request", "input must be a string or a list of strings")
        dim = body["dimensions"] if isinstance(body.get("dimensions"), int) else _EMBED_DIM
        if not 1 <= dim <= 4096:
            return _error(start_response, "400 Bad Request", "dimensions must be between 1 and 4096")
        data = [{"object": "embedding", "index": i, "embedding": _embedding(t, dim)} for i, t in enumerate(inputs)]
        tokens = sum(_count(t) for t in inputs)
        return self._json(start_response, {"object": "list", "data": data, "model": body["model"],
                                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _completion(self, start_response, body: dict, *, chat: bool) -> Iterable[bytes]:
        prompt = _prompt_text(body, chat)
        pieces = _tokens(answer_text(prompt))
        finish = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, finish = pieces[:limit], "length"
        usage = {"prompt_tokens": _count(prompt), "completion_tokens": len(pieces),
                 "total_tokens": _count(prompt) + len(pieces)}
        ident = "chatcmpl-demo" if chat else "cmpl-demo"
        if not body.get("stream"):
            text = "".join(pieces)
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                      if chat else {"index": 0, "text": text, "finish_reason": finish})
            return self._json(start_response, {
                "id": ident, "object": "chat.completion" if chat else "text_completion", "created": _CREATED,
                "model": body["model"], "choices": [choice], "usage": usage})
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        return self._sse(ident, body["model"], pieces, finish, usage if with_usage else None, chat)

    def _sse(self, ident: str, model: str, pieces: list[str], finish: str, usage: dict | None,
             chat: bool) -> Iterator[bytes]:
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list, **extra) -> bytes:
            obj = {"id": ident, "object": kind, "created": _CREATED, "model": model, "choices": choices, **extra}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        def choice(text: str | None, reason: str | None = None) -> dict:
            if chat:
                delta = {} if text is None else {"content": text}
                return {"index": 0, "delta": delta, "finish_reason": reason}
            return {"index": 0, "text": text or "", "finish_reason": reason}

        if chat:
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for i, piece in enumerate(pieces):
            if i and self.token_delay_s:
                time.sleep(self.token_delay_s)
            yield event([choice(piece)])
        yield event([choice(None, finish)])
        if usage is not None:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"


def _model(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "bridge-demo"}


def _prompt_text(body: dict, chat: bool) -> str:
    if not chat:
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            return content if isinstance(content, str) else ""
    return ""


class _BodyStream(io.RawIOBase):
    """A file-like view of a WSGI body iterable; ``read1`` hands over each piece as produced."""

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body
        self._iter = iter(body)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read1(self, amt: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._iter, b"")
        data, self._pending = (self._pending, b"") if amt is None or amt < 0 else (
            self._pending[:amt], self._pending[amt:])
        return data

    def read(self, amt: int | None = None, **_: object) -> bytes:
        if amt is None or amt < 0:
            return b"".join([self._pending, *self._iter]) if not self.closed else b""
        return self.read1(amt)

    def release_conn(self) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        super().close()


class DemoAdapter(BaseAdapter):
    """A requests transport that answers with :class:`DemoBackend` in-process."""

    def __init__(self, token_delay_s: float) -> None:
        super().__init__()
        self.app = DemoBackend(token_delay_s)

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None, verify: bool | str = True,
             cert: str | tuple[str, str] | None = None, proxies: dict[str, str] | None = None) -> requests.Response:
        raw = request.body
        body = raw.encode("utf-8") if isinstance(raw, str) else raw if isinstance(raw, bytes) else b""
        path = request.path_url.split("?", 1)[0]
        environ = {"REQUEST_METHOD": request.method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body)}
        status_headers: dict = {}

        def start_response(status: str, headers: list) -> None:
            status_headers["status"], status_headers["headers"] = status, headers

        result = self.app(environ, start_response)
        response = requests.Response()
        response.status_code = int(status_headers["status"].split(" ", 1)[0])
        response.reason = status_headers["status"].split(" ", 1)[1]
        response.headers = CaseInsensitiveDict(status_headers["headers"])
        response.raw = _BodyStream(result)
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        if not stream:
            response.content  # noqa: B018 - read the body now, as requests does without stream=True
        return response

    def close(self) -> None:
        pass


def demo_transport(settings: Settings) -> RequestsTransport:
    """Pooled HTTP for every URL, the in-process demo backend for the demo host."""
    host = DEMO_BACKEND_URL.rsplit("/v1", 1)[0]
    return RequestsTransport(settings, mounts={host: DemoAdapter(settings.demo_token_delay_s)})
