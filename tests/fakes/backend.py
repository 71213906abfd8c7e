"""A scriptable fake OpenAI-compatible HTTP backend for tests.

Stdlib only. Runs a ``socketserver.ThreadingTCPServer`` with a hand-written HTTP/1.1 handler in a
background thread of the test process, bound to 127.0.0.1 on a free port, so that faults can be
injected at the socket level (refused connections, stalls, RSTs, split UTF-8, ...).

Typical use::

    with FakeBackend() as fb:                       # or fb = FakeBackend().start(); ...; fb.stop()
        base = fb.url + "/v1"                       # fb.url has no /v1
        fb.script(tokens=["a", "b"], delay_s=0.01)  # behaviour for the next requests (until reset())
        ...
        assert fb.requests[-1].json["model"] == "m1"
        fb.reset()                                  # defaults again, recorded requests cleared

Endpoints: ``GET /v1/models``, ``GET /v1/models/<id>``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``, ``GET /health``.

See ``FakeBackend.script`` for every keyword and ``FAULTS`` for the fault modes.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import select
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Iterable

__all__ = [
    "FakeBackend",
    "Recorded",
    "FAULTS",
    "DEFAULT_TEXT",
    "DEFAULT_TOKENS",
    "SPLIT_UTF8_TEXT",
    "SPLIT_UTF8_TOKENS",
    "NGINX_502_HTML",
    "INVALID_JSON_BODY",
    "embedding_vector",
    "sse_event",
    "parse_sse",
    "split_fragments",
]

DEFAULT_TEXT = "Hello from fake backend."
DEFAULT_TOKENS = ("Hello", " from", " fake", " backend.")
SPLIT_UTF8_TEXT = "héllo wörld ✓ 🎉"
SPLIT_UTF8_TOKENS = ("h", "é", "llo", " wö", "rld", " ✓", " 🎉")
CREATED = 1700000000

NGINX_502_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
INVALID_JSON_BODY = b'{"id": "chatcmpl-broken", "choices": [ this is not json'

# Fault modes accepted by FakeBackend.script(fault=...).
FAULTS = frozenset(
    {
        "refuse",             # listening socket closed: connection refused (re-listens on reset())
        "accept_no_answer",   # accept + read request, never answer (until reset/stop/peer close)
        "slow_headers",       # sleep first_delay_s (default 60 s) before the status line
        "stall_mid_stream",   # k deltas then silence, connection kept open
        "reset_mid_stream",   # k deltas then RST (SO_LINGER 0 + close)
        "close_mid_stream",   # k deltas then FIN, HTTP chunked body left unterminated, no [DONE]
        "truncated_stream",   # k deltas then a valid end of the HTTP body, but no finish chunk / [DONE]
        "garbage_sse",        # comments, "event: ping", "data: {not json", "data:" without space
        "html_502",           # 502 with an nginx HTML page
        "invalid_json",       # 200 application/json whose body is not JSON
        "error_event",        # k deltas then data: {"error": {...}} (stream); 500 server_error (non-stream)
        "huge",               # content of huge_bytes (default 8 MiB)
        "split_utf8",         # multi-byte text, every non-ASCII byte in its own HTTP chunk + TCP send
        "no_usage",           # never any usage
    }
)
_MID_STREAM = {"stall_mid_stream", "reset_mid_stream", "close_mid_stream", "truncated_stream", "error_event"}

_AUTO = object()  # "compute it" sentinel for usage

_DEFAULTS: dict[str, Any] = {
    "tokens": None,            # list[str]; default DEFAULT_TOKENS
                               # (SPLIT_UTF8_TOKENS for split_utf8; [] with tool_calls)
    "delay_s": 0.0,            # pause between streamed events
    "first_delay_s": 0.0,      # pause before the status line of every (matching or not) request
    "finish_reason": None,     # default "stop" ("tool_calls" with tool_calls, "length" when max_tokens truncates)
    "usage": _AUTO,            # dict overrides; None = no usage anywhere
    "prompt_tokens": 7,
    "tool_calls": None,        # [{"id", "name", "arguments": str}]
    "fragments": 3,            # pieces per tool-call arguments string when streaming
    "interleave_tool_calls": False,  # stream parallel calls' fragments round-robin (0, 1, 0, 1, ...)
    "reasoning": None,         # list[str], streamed before content
    "reasoning_field": "reasoning_content",  # or "reasoning" (vLLM/OpenRouter style)
    "status": None,            # int: answer with this status ...
    "error_body": None,        # ... and this body (dict -> JSON, bytes/str -> raw); None = OpenAI error shape
    "headers": None,           # extra response headers for error answers (e.g. {"Retry-After": "1"})
    "fail_times": None,        # status/fault only for the first N matching requests
    "fault": None,             # one of FAULTS
    "fault_after_tokens": 2,   # k for the *_mid_stream / error_event faults
    "huge_bytes": 8 * 1024 * 1024,
    "match_path": None,        # str or tuple of path prefixes: status/fault only for these paths
    "models": None,            # replace the model list
    "usage_inline": False,     # put usage into the finish chunk (llama-server /v1/completions style)
    "reverse_embeddings": False,  # return embeddings data[] in reverse index order
    "error_event_line": False,  # precede the error_event data line with "event: error"
    "sse_eol": "\n",           # "\r\n" to use CRLF SSE framing
    "api_key": None,           # require "Authorization: Bearer <api_key>" (401 otherwise)
    "embedding_dim": 8,        # default vector size (request "dimensions" wins)
    # --- added for issue 18 (Ollama fidelity); defaults keep the old behaviour ---
    "timings": None,           # True: llama-server style `timings` (auto figures); dict: exactly this object
    "logprobs": False,         # True: honour the request's logprobs/top_logprobs (chat shape; legacy for /completions)
    "reject_params": None,     # names: 400 when the request body carries any of them (a strict backend)
    "reject_message": "Unrecognized request argument supplied: {param}",  # its message ({param}, {model})
    # --- added for issue 15 (new APIs); the default keeps the old behaviour (404 Invalid URL) ---
    "responses_api": False,    # True: serve POST /v1/responses natively (text from tokens; faults apply)
    # --- added for issue 18 (model metadata); the default keeps the old behaviour ---
    "model_meta": None,        # {id: {extra fields}} merged into that id's /v1/models entry (e.g. llama.cpp "meta")
}


# --------------------------------------------------------------------------------------------
# small helpers usable from tests


class Headers(dict):
    """dict with case-insensitive keys (stored lower-case)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        super().__init__()
        for k, v in pairs:
            self[k] = v

    def __setitem__(self, k, v):
        super().__setitem__(k.lower(), v)

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().__contains__(k.lower())

    def get(self, k, default=None):
        return super().get(k.lower(), default)


@dataclass
class Recorded:
    """One request received by the fake backend."""

    method: str
    path: str                    # without query string
    query: str
    headers: Headers             # case-insensitive
    body: bytes                  # raw body
    json: Any                    # parsed body, or None (absent or invalid JSON)
    time: float = field(default_factory=time.monotonic)

    @property
    def raw(self) -> bytes:
        return self.body

    @property
    def stream(self) -> bool:
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None


def sse_event(obj: Any, eol: str = "\n", space: bool = True) -> str:
    """Frame one SSE ``data:`` event (obj: dict/list -> JSON, str -> as is, e.g. "[DONE]")."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return ("data: " if space else "data:") + data + eol + eol


def parse_sse(text: str | bytes) -> list[str]:
    """Lenient SSE parser: the data payload of each dispatched event (comments/empty events skipped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    out, data = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                out.append("\n".join(data))
            data = []
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            v = line[5:]
            data.append(v[1:] if v.startswith(" ") else v)
    if data:
        out.append("\n".join(data))
    return out


def split_fragments(s: str, n: int) -> list[str]:
    """Split s into n (at most len(s)) contiguous non-empty pieces; [s] when n <= 1."""
    if n <= 1 or len(s) <= 1:
        return [s]
    n = min(n, len(s))
    cuts = [round(i * len(s) / n) for i in range(n + 1)]
    return [s[cuts[i]:cuts[i + 1]] for i in range(n) if cuts[i] < cuts[i + 1]]


def embedding_vector(model: str, item: Any, dims: int = 8) -> list[float]:
    """The deterministic, L2-normalised vector the fake returns for one input item."""
    key = item if isinstance(item, str) else json.dumps(item)
    seed = hashlib.sha256(f"{model}\0{key}".encode()).digest()
    raw: list[float] = []
    block = seed
    while len(raw) < dims:
        raw.extend((b / 255.0) * 2.0 - 1.0 for b in block)
        block = hashlib.sha256(block).digest()
    raw = raw[:dims]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _openai_error(message: str, type_: str = "invalid_request_error", code: Any = None, param: Any = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _default_error(status: int) -> dict:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 429:
        return _openai_error("Rate limit reached (fake backend)", "rate_limit_error", "rate_limit_exceeded")
    if status == 401:
        return _openai_error("Incorrect API key provided", "invalid_request_error", "invalid_api_key")
    if status >= 500:
        return _openai_error(f"{phrase} (fake backend)", "server_error")
    return _openai_error(f"{phrase} (fake backend)")


# --------------------------------------------------------------------------------------------
# connection plumbing


class _BadRequest(Exception):
    pass


class _PeerGone(Exception):
    """Client closed/reset the connection (or the test released it)."""


class _Tracker:
    """State of one held/streaming response, for FakeBackend.wait_closed()."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.done = False

    def mark_closed(self) -> None:
        if not self.done:
            self.closed.set()


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _more(self) -> bytes:
        data = self.sock.recv(65536)
        self.buf += data
        return data

    def read_until(self, delim: bytes, limit: int = 1 << 16) -> bytes | None:
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise _BadRequest("header too long")
            if not self._more():
                if self.buf:
                    raise _BadRequest("truncated request")
                return None

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise _BadRequest("truncated body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_request(self) -> tuple[Recorded, bool, bool] | None:
        """-> (recorded, keep_alive_requested, json_invalid) or None on clean EOF."""
        head = self.read_until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        while lines and lines[0] == "":  # tolerate stray CRLF between requests
            lines.pop(0)
        parts = lines[0].split(" ") if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("bad request line")
        method, target, version = parts
        hdrs = Headers()
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                raise _BadRequest("bad header line")
            hdrs[k.strip()] = v.strip()
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = self.read_until(b"\r\n")
                if size_line is None:
                    raise _BadRequest("truncated chunked body")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.read_until(b"\r\n") not in (b"", None):  # trailers
                        pass
                    break
                body += self.read_exact(size)
                self.read_exact(2)
            body = bytes(body)
        else:
            body = self.read_exact(int(hdrs.get("content-length", "0") or 0))
        parsed, invalid = None, False
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                invalid = True
        path, _, query = target.partition("?")
        conn_hdr = hdrs.get("connection", "").lower()
        keep = ("close" not in conn_hdr) and (version == "HTTP/1.1" or "keep-alive" in conn_hdr)
        return Recorded(method, path, query, hdrs, body, parsed), keep, invalid


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # pragma: no cover - trivial
        self.server.fake._serve_connection(self.request)  # type: ignore[attr-defined]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, addr, fake: "FakeBackend"):
        self.fake = fake
        super().__init__(addr, _Handler)

    def handle_error(self, request, client_address) -> None:  # keep pytest output quiet
        pass


class _Ctx:
    """Per-request context: socket, script snapshot, release event, tracker."""

    def __init__(self, fb: "FakeBackend", sock: socket.socket, s: dict, release: threading.Event):
        self.fb = fb
        self.sock = sock
        self.s = s
        self.release = release
        self.tracker: _Tracker | None = None

    # -- waiting -----------------------------------------------------------------------------
    def hold(self, seconds: float | None) -> None:
        """Wait `seconds` (None = forever) while watching for peer close / reset / stop.

        Raises _PeerGone when the peer closed the connection or the test released it.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if self.fb._stopping.is_set() or self.release.is_set():
                raise _PeerGone("released")
            step = 0.05
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return
            self.check_peer(step)

    def check_peer(self, timeout: float = 0.0) -> None:
        try:
            r, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
            if not r:
                return
            data = self.sock.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            data = b""
        if data == b"":
            if self.tracker:
                self.tracker.mark_closed()
            raise _PeerGone("peer closed")
        if timeout > 0:  # client sent something (pipelining): don't spin
            time.sleep(timeout)

    # -- writing -----------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            if self.tracker:
                self.tracker.mark_closed()
            raise _PeerGone(str(e)) from e

    def send_split_utf8(self, data: bytes, chunked: bool) -> None:
        """Send ASCII runs as one piece and every non-ASCII byte as its own piece (+ tiny sleeps)."""
        pieces: list[bytes] = []
        run = bytearray()
        for b in data:
            if b < 0x80:
                run.append(b)
            else:
                if run:
                    pieces.append(bytes(run))
                    run = bytearray()
                pieces.append(bytes([b]))
        if run:
            pieces.append(bytes(run))
        for p in pieces:
            self.send(b"%x\r\n%s\r\n" % (len(p), p) if chunked else p)
            time.sleep(0.003)

    def status_line(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        out = [f"HTTP/1.1 {status} {phrase}", "Server: fake-openai"]
        out += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def respond(self, status: int, body: bytes, ctype: str = "application/json",
                extra: dict | None = None, keep: bool = True) -> bool:
        hdrs = [("Content-Type", ctype), ("Content-Length", str(len(body))),
                ("Connection", "keep-alive" if keep else "close")]
        for k, v in (extra or {}).items():
            hdrs = [h for h in hdrs if h[0].lower() != k.lower()] + [(k, str(v))]
        self.send(self.status_line(status, hdrs) + body)
        return keep

    def respond_json(self, status: int, obj: Any, keep: bool = True, extra: dict | None = None) -> bool:
        return self.respond(status, _dumps(obj), "application/json", extra, keep)


# --------------------------------------------------------------------------------------------


class FakeBackend:
    """Scriptable fake OpenAI-compatible server (see module docstring)."""

    def __init__(self, models: Iterable[str] = ("m1", "m2", "e1"), host: str = "127.0.0.1"):
        self._initial_models = list(models)
        self._host = host
        self._port = 0
        self._lock = threading.RLock()
        self._requests: list[Recorded] = []
        self._script: dict[str, Any] = dict(_DEFAULTS)
        self._models = list(self._initial_models)
        self._fail_count = 0
        self._release = threading.Event()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._trackers: list[_Tracker] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "FakeBackend":
        if not self._started:
            self._stopping.clear()
            self._listen()
            self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self._unlisten()
        self._close_all_conns()

    def __enter__(self) -> "FakeBackend":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def _listen(self) -> None:
        srv = _Server((self._host, self._port), self)
        self._port = srv.server_address[1]
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             name=f"fake-backend-{self._port}", daemon=True)
        self._server, self._thread = srv, t
        t.start()

    def _unlisten(self) -> None:
        srv, t = self._server, self._thread
        self._server = self._thread = None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        if t is not None:
            t.join(timeout=2)

    def _close_all_conns(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _apply_listen_state(self) -> None:
        if not self._started:
            return
        refuse = self._script.get("fault") == "refuse"
        if refuse and self._server is not None:
            self._unlisten()
            self._close_all_conns()  # pooled keep-alive connections must fail too
        elif not refuse and self._server is None:
            self._listen()

    # -- scripting ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear script and recorded requests; release held connections; re-listen if refused."""
        with self._lock:
            self._script = dict(_DEFAULTS)
            self._models = list(self._initial_models)
            self._fail_count = 0
            self._requests.clear()
            self._trackers.clear()
            old, self._release = self._release, threading.Event()
        old.set()
        self._apply_listen_state()

    def script(self, **kw: Any) -> "FakeBackend":
        """Set behaviour for the next requests (persists until reset()). Keywords combine freely.

        tokens, delay_s, first_delay_s, finish_reason, usage (dict|None), prompt_tokens,
        tool_calls ([{"id","name","arguments"}]), fragments, interleave_tool_calls, reasoning (list[str]),
        reasoning_field,
        status, error_body (dict|bytes|str), headers, fail_times, fault (FAULTS), fault_after_tokens,
        huge_bytes, match_path, models, usage_inline, reverse_embeddings, error_event_line, sse_eol,
        api_key, embedding_dim; timings, logprobs, reject_params, reject_message (issue 18);
        responses_api (issue 15); model_meta (issue 18).
        """
        unknown = set(kw) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown script keyword(s): {sorted(unknown)}")
        if kw.get("fault") is not None and kw["fault"] not in FAULTS:
            raise ValueError(f"unknown fault {kw['fault']!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._script.update(kw)
            if "models" in kw:
                self._models = list(kw["models"]) if kw["models"] is not None else list(self._initial_models)
            if "fail_times" in kw:
                self._fail_count = 0
        self._apply_listen_state()
        return self

    @property
    def models(self) -> list[str]:
        with self._lock:
            return list(self._models)

    # -- inspection --------------------------------------------------------------------------
    @property
    def requests(self) -> list[Recorded]:
        """Snapshot (copy) of every request received since the last reset()."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> Recorded | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self._requests if r.path == path]

    def wait_requests(self, n: int, timeout_s: float = 2.0) -> bool:
        """True once at least n requests were recorded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._requests) >= n:
                    return True
            time.sleep(0.005)
        with self._lock:
            return len(self._requests) >= n

    def wait_closed(self, timeout_s: float = 2.0) -> bool:
        """True once the most recent streaming (or held: stall/no-answer/slow-headers) response's
        client connection was closed by the peer before the response was complete."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                t = self._trackers[-1] if self._trackers else None
            if t is not None and t.closed.is_set():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    # -- static helpers ----------------------------------------------------------------------
    @staticmethod
    def sse_text(events: Iterable[Any], done: bool = True, eol: str = "\n") -> str:
        """SSE body for the given chunk objects (+ "data: [DONE]" when done)."""
        out = "".join(sse_event(e, eol) for e in events)
        return out + (sse_event("[DONE]", eol) if done else "")

    # -- server side -------------------------------------------------------------------------
    def _serve_connection(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.add(sock)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = _Reader(sock)
            while not self._stopping.is_set():
                try:
                    got = reader.read_request()
                except _BadRequest as e:
                    ctx = _Ctx(self, sock, dict(_DEFAULTS), self._release)
                    ctx.respond_json(400, _openai_error(f"malformed HTTP request: {e}"), keep=False)
                    break
                if got is None:
                    break
                rec, keep, invalid = got
                if not self._dispatch(sock, rec, keep, invalid):
                    break
        except (_PeerGone, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _new_tracker(self, ctx: _Ctx) -> _Tracker:
        t = _Tracker()
        with self._lock:
            self._trackers.append(t)
        ctx.tracker = t
        return t

    def _dispatch(self, sock: socket.socket, rec: Recorded, keep: bool, invalid: bool) -> bool:
        with self._lock:
            self._requests.append(rec)
            s = dict(self._script)
            models = list(self._models)
            release = self._release
            mp = s["match_path"]
            matches = mp is None or rec.path.startswith(tuple(mp) if isinstance(mp, (list, tuple)) else mp)
            active = False
            if matches and (s["status"] is not None or s["fault"] is not None):
                if s["fail_times"] is None:
                    active = True
                elif self._fail_count < s["fail_times"]:
                    self._fail_count += 1
                    active = True
        fault = s["fault"] if active else None
        ctx = _Ctx(self, sock, s, release)
        try:
            return self._answer(ctx, rec, keep, invalid, active, fault, models)
        except _PeerGone:
            if release.is_set() or self._stopping.is_set():
                self._abort(sock)
            return False

    @staticmethod
    def _abort(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def _answer(self, ctx: _Ctx, rec: Recorded, keep: bool, invalid: bool, active: bool,
                fault: str | None, models: list[str]) -> bool:
        s = ctx.s
        if fault == "refuse":  # raced with the listener shutdown
            self._abort(ctx.sock)
            return False
        if fault == "accept_no_answer":
            self._new_tracker(ctx)
            ctx.hold(None)
            return False
        held = fault == "slow_headers" or s["first_delay_s"] > 0 or rec.stream
        if held:
            self._new_tracker(ctx)
        if fault == "slow_headers":
            ctx.hold(s["first_delay_s"] or 60.0)
        elif s["first_delay_s"] > 0:
            ctx.hold(s["first_delay_s"])

        if active and s["status"] is not None:
            eb = s["error_body"]
            extra = dict(s["headers"] or {})
            if eb is None or isinstance(eb, (dict, list)):
                body = _dumps(eb if eb is not None else _default_error(s["status"]))
                ctype = "application/json"
            else:
                body = eb.encode("utf-8") if isinstance(eb, str) else bytes(eb)
                ctype = "text/plain; charset=utf-8"
            return ctx.respond(s["status"], body, ctype, extra, keep)
        if fault == "html_502":
            return ctx.respond(502, NGINX_502_HTML, "text/html", {"Server": "nginx/1.24.0"}, keep)
        if fault == "invalid_json":
            return ctx.respond(200, INVALID_JSON_BODY, "application/json", None, keep)

        if s["api_key"] is not None and rec.headers.get("authorization") != f"Bearer {s['api_key']}":
            return ctx.respond_json(401, _default_error(401), keep)

        path, method = rec.path, rec.method
        if path == "/health":
            return ctx.respond_json(200, {"status": "ok"}, keep)
        if path == "/v1/models":
            if method != "GET":
                return ctx.respond_json(405, _openai_error(f"method {method} not allowed"), keep)
            data = [self._model_obj(m, s["model_meta"]) for m in models]
            return ctx.respond_json(200, {"object": "list", "data": data}, keep)
        if path.startswith("/v1/models/"):
            mid = path[len("/v1/models/"):]
            if mid not in models:
                return ctx.respond_json(404, self._model_not_found(mid), keep)
            return ctx.respond_json(200, self._model_obj(mid, s["model_meta"]), keep)
        if path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            if method != "POST":
                return ctx.respond_json(405, _openai_error(f"method {method} not allowed"), keep)
            if invalid or not isinstance(rec.json, dict):
                msg = "We could not parse the JSON body of your request." if invalid or rec.body else \
                    "The request body is empty or not a JSON object."
                return ctx.respond_json(400, _openai_error(msg), keep)
            model = rec.json.get("model")
            if not model:
                return ctx.respond_json(400, _openai_error("you must provide a model parameter", param="model"), keep)
            if model not in models:
                return ctx.respond_json(404, self._model_not_found(model), keep)
            if path == "/v1/embeddings":
                return self._embeddings(ctx, rec.json, keep)
            for param in s["reject_params"] or ():
                if param in rec.json:
                    msg = s["reject_message"].format(param=param, model=model)
                    return ctx.respond_json(400, _openai_error(msg, param=param), keep)
            return self._generate(ctx, rec.json, "chat" if path == "/v1/chat/completions" else "text", fault, keep)
        if path == "/v1/responses" and s["responses_api"] and method == "POST" and isinstance(rec.json, dict):
            if rec.json.get("model") not in models:
                return ctx.respond_json(404, self._model_not_found(str(rec.json.get("model"))), keep)
            return self._responses(ctx, rec.json, fault, keep)
        return ctx.respond_json(404, _openai_error(f"Invalid URL ({method} {path})"), keep)

    def _responses(self, ctx: _Ctx, body: dict, fault: str | None, keep: bool) -> bool:
        """A native Responses API answer (issue 15): one message item made of the scripted tokens."""
        s = ctx.s
        tokens = list(s["tokens"]) if s["tokens"] is not None else list(DEFAULT_TOKENS)
        n = next(self._ids)
        rid, mid = f"resp_fake{n}", f"msg_fake{n}"
        usage = {"input_tokens": s["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": len(tokens), "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": s["prompt_tokens"] + len(tokens)}
        part = {"type": "output_text", "text": "".join(tokens), "annotations": []}
        item = {"id": mid, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        base = {"id": rid, "object": "response", "created_at": CREATED, "model": body["model"], "error": None,
                "incomplete_details": None, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "metadata": {"served_by": "fake-responses-api"}}
        final = {**base, "status": "completed", "output": [item], "usage": usage}
        if body.get("stream") is not True:
            return ctx.respond_json(200, final, keep)
        seq = itertools.count()
        events = [{"type": "response.created", "response": {**base, "status": "in_progress", "output": []}},
                  {"type": "response.output_item.added", "output_index": 0,
                   "item": {**item, "status": "in_progress", "content": []}},
                  {"type": "response.content_part.added", "item_id": mid, "output_index": 0, "content_index": 0,
                   "part": {**part, "text": ""}}]
        deltas = [{"type": "response.output_text.delta", "item_id": mid, "output_index": 0, "content_index": 0,
                   "delta": t} for t in tokens]
        tail = [{"type": "response.output_text.done", "item_id": mid, "output_index": 0, "content_index": 0,
                 "text": part["text"]},
                {"type": "response.output_item.done", "output_index": 0, "item": item},
                {"type": "response.completed", "response": final}]
        tracker = ctx.tracker or self._new_tracker(ctx)
        ctx.send(ctx.status_line(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                                       ("Transfer-Encoding", "chunked"), ("Connection", "keep-alive")]))
        k = int(s["fault_after_tokens"])
        for i, event in enumerate(events + deltas + tail):
            if fault in _MID_STREAM and i == len(events) + min(k, len(deltas)):
                return self._mid_fault(ctx, "close_mid_stream" if fault == "error_event" else fault, chunked=True)
            if i and s["delay_s"] > 0:
                ctx.hold(s["delay_s"])
            data = f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': next(seq)})}\n\n"
            ctx.send(b"%x\r\n%s\r\n" % (len(data.encode()), data.encode()))
        ctx.send(b"0\r\n\r\n")
        tracker.done = True
        return keep

    @staticmethod
    def _model_obj(m: str, meta: dict | None = None) -> dict:
        extra = (meta or {}).get(m) or {}
        return {"id": m, "object": "model", "created": CREATED, "owned_by": "fake", **extra}

    @staticmethod
    def _model_not_found(m: str) -> dict:
        return _openai_error(f"The model `{m}` does not exist", code="model_not_found")

    # -- embeddings --------------------------------------------------------------------------
    def _embeddings(self, ctx: _Ctx, body: dict, keep: bool) -> bool:
        inp = body.get("input")
        if isinstance(inp, str):
            items: list[Any] = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            items = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, (str, list)) for x in inp):
            items = inp
        else:
            return ctx.respond_json(
                400, _openai_error("'input' must be a non-empty string or array", param="input"), keep)
        dims = body.get("dimensions") or ctx.s["embedding_dim"]
        b64 = body.get("encoding_format") == "base64"
        data = []
        ntok = 0
        for i, item in enumerate(items):
            vec = embedding_vector(body["model"], item, int(dims))
            ntok += len(item.split()) if isinstance(item, str) else len(item)
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if ctx.s["reverse_embeddings"]:
            data.reverse()
        out = {"object": "list", "data": data, "model": body["model"],
               "usage": {"prompt_tokens": ntok, "total_tokens": ntok}}
        return ctx.respond_json(200, out, keep)

    # -- chat / completions ------------------------------------------------------------------
    def _generate(self, ctx: _Ctx, body: dict, kind: str, fault: str | None, keep: bool) -> bool:
        s = ctx.s
        tool_calls = list(s["tool_calls"] or []) if kind == "chat" else []
        reasoning = list(s["reasoning"] or []) if kind == "chat" else []
        if s["tokens"] is not None:
            tokens = list(s["tokens"])
        elif fault == "split_utf8":
            tokens = list(SPLIT_UTF8_TOKENS)
        elif tool_calls:
            tokens = []
        else:
            tokens = list(DEFAULT_TOKENS)
        if fault == "huge":
            pat = "0123456789abcdef"
            n = int(s["huge_bytes"])
            tokens = [(pat * (n // len(pat) + 1))[:n]]
        finish = s["finish_reason"] or ("tool_calls" if tool_calls else "stop")
        max_toks = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_toks, int) and 0 < max_toks < len(tokens) and fault != "huge":
            tokens = tokens[:max_toks]
            finish = s["finish_reason"] or "length"
        if s["usage"] is _AUTO:
            n = len(tokens) + len(reasoning)
            usage = {"prompt_tokens": s["prompt_tokens"], "completion_tokens": n,
                     "total_tokens": s["prompt_tokens"] + n}
        else:
            usage = s["usage"]
        if fault == "no_usage":
            usage = None
        ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-fake{next(self._ids)}"
        model = body["model"]
        timings = _fake_timings(s["timings"], s["prompt_tokens"], len(tokens) + len(reasoning))
        wanted = _wanted_logprobs(s["logprobs"], body, kind)
        if body.get("stream") is True:
            so = body.get("stream_options") or {}
            include_usage = isinstance(so, dict) and so.get("include_usage") is True
            return self._stream(ctx, kind, ident, model, tokens, reasoning, tool_calls, finish,
                                usage if include_usage else None, fault, keep, timings=timings, logprobs=wanted)

        text = "".join(tokens)
        if kind == "chat":
            msg: dict[str, Any] = {"role": "assistant", "content": text if (tokens or not tool_calls) else None}
            if reasoning:
                msg[s["reasoning_field"]] = "".join(reasoning)
            if tool_calls:
                msg["tool_calls"] = [{"id": tc["id"], "type": "function",
                                      "function": {"name": tc["name"], "arguments": tc["arguments"]}}
                                     for tc in tool_calls]
            out: dict[str, Any] = {"id": ident, "object": "chat.completion", "created": CREATED, "model": model,
                                   "system_fingerprint": "fake",
                                   "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}]}
        else:
            out = {"id": ident, "object": "text_completion", "created": CREATED, "model": model,
                   "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
        if usage is not None:
            out["usage"] = usage
        if timings is not None:
            out["timings"] = timings
        if wanted is not None:
            out["choices"][0]["logprobs"] = _logprobs_for(kind, tokens, wanted)
        payload = _dumps(out)

        if fault == "error_event":
            return ctx.respond_json(500, _openai_error("boom", "server_error"), keep)
        if fault in _MID_STREAM:  # partial body, then the fault
            ctx.send(ctx.status_line(200, [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(payload))), ("Connection", "keep-alive")]))
            ctx.send(payload[: len(payload) // 2])
            self._new_tracker(ctx)
            return self._mid_fault(ctx, fault, chunked=False)
        if fault == "split_utf8":
            ctx.send(ctx.status_line(200, [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(payload))), ("Connection", "keep-alive")]))
            ctx.send_split_utf8(payload, chunked=False)
            return keep
        return ctx.respond(200, payload, "application/json; charset=utf-8", None, keep)

    def _mid_fault(self, ctx: _Ctx, fault: str, chunked: bool) -> bool:
        """Perform a mid-stream fault. Returns keep-alive (False when the connection is gone)."""
        if fault == "stall_mid_stream":
            ctx.hold(None)
            return False
        if fault == "reset_mid_stream":
            time.sleep(0.05)  # let already-sent bytes reach the client before the RST
            self._abort(ctx.sock)
            raise _PeerGone("reset by fake")
        if fault == "close_mid_stream":
            time.sleep(0.02)
            try:
                ctx.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return False
        if fault == "truncated_stream":
            if chunked:
                ctx.send(b"0\r\n\r\n")
                if ctx.tracker:
                    ctx.tracker.done = True
                return True
            return False
        raise AssertionError(fault)

    def _stream(self, ctx: _Ctx, kind: str, ident: str, model: str, tokens: list[str], reasoning: list[str],
                tool_calls: list[dict], finish: str, usage: dict | None, fault: str | None, keep: bool,
                timings: dict | None = None, logprobs: int | None = None) -> bool:
        s = ctx.s
        eol = s["sse_eol"]
        base = {"id": ident, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                "created": CREATED, "model": model}
        if kind == "chat":
            base["system_fingerprint"] = "fake"

        def chunk(delta: Any, fr: str | None = None) -> dict:
            if kind == "chat":
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fr}
            else:
                choice = {"text": delta, "index": 0, "logprobs": None, "finish_reason": fr}
            return {**base, "choices": [choice]}

        # (is_delta, payload)
        events: list[tuple[bool, Any]] = []
        if kind == "chat":
            events.append((False, chunk({"role": "assistant", "content": ""})))
            for r in reasoning:
                events.append((True, chunk({s["reasoning_field"]: r})))
            for i, t in enumerate(tokens):
                ev = chunk({"content": t})
                if logprobs is not None:
                    ev["choices"][0]["logprobs"] = {"content": [_logprob_entry(t, i, logprobs)]}
                events.append((True, ev))
            per_call = []
            for i, tc in enumerate(tool_calls):
                head = (True, chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                                      "function": {"name": tc["name"], "arguments": ""}}]}))
                frags = [(True, chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}))
                         for frag in split_fragments(tc["arguments"], int(s["fragments"]))]
                per_call.append([head, *frags])
            if s["interleave_tool_calls"]:
                for round_ in itertools.zip_longest(*per_call):
                    events.extend(e for e in round_ if e is not None)
            else:
                for call_events in per_call:
                    events.extend(call_events)
            fin = chunk({}, finish)
        else:
            for i, t in enumerate(tokens):
                ev = chunk(t)
                if logprobs is not None:
                    ev["choices"][0]["logprobs"] = _logprobs_for("text", [t], logprobs, start=i)
                events.append((True, ev))
            fin = chunk("", finish)
        if timings is not None:  # llama-server puts them on the chunk that carries finish_reason
            fin["timings"] = timings
        if usage is not None and s["usage_inline"]:
            fin["usage"] = usage
        events.append((False, fin))
        if usage is not None and not s["usage_inline"]:
            events.append((False, {**base, "choices": [], "usage": usage}))
        events.append((False, "[DONE]"))

        tracker = ctx.tracker or self._new_tracker(ctx)
        ctx.send(ctx.status_line(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                                       ("Cache-Control", "no-cache"), ("Transfer-Encoding", "chunked"),
                                       ("Connection", "keep-alive")]))

        def write(text: str) -> None:
            data = text.encode("utf-8")
            if fault == "split_utf8":
                ctx.send_split_utf8(data, chunked=True)
            else:
                ctx.send(b"%x\r\n%s\r\n" % (len(data), data))

        garbage = [": comment" + eol + eol, "event: ping" + eol + eol,
                   "data: {not json" + eol + eol, ": OPENROUTER PROCESSING" + eol + eol]
        k = int(s["fault_after_tokens"])
        deltas_sent = 0
        for i, (is_delta, payload) in enumerate(events):
            if i > 0 and s["delay_s"] > 0:
                ctx.hold(s["delay_s"])
            else:
                ctx.check_peer(0)
            if fault in _MID_STREAM and i > 0 and deltas_sent >= k and (is_delta or payload is fin):
                if fault == "error_event":
                    err = _openai_error("boom", "server_error")
                    write(("event: error" + eol if s["error_event_line"] else "") + sse_event(err, eol))
                    ctx.send(b"0\r\n\r\n")
                    tracker.done = True
                    return keep
                return self._mid_fault(ctx, fault, chunked=True)
            if fault == "garbage_sse":
                write(garbage[i % len(garbage)])
            write(sse_event(payload, eol, space=not (fault == "garbage_sse" and i % 2 == 1)))
            if is_delta:
                deltas_sent += 1
        ctx.send(b"0\r\n\r\n")
        tracker.done = True
        return keep


# --------------------------------------------------------------------------------------------
# issue 18 additions: llama-server timings and logprobs


def _fake_timings(setting: Any, prompt_n: int, predicted_n: int) -> dict | None:
    """llama-server's ``timings`` object: None (off), a given dict, or figures derived from the counts."""
    if setting is None or setting is False:
        return None
    if isinstance(setting, dict):
        return dict(setting)
    prompt_ms, predicted_ms = 12.5, 20.0 * max(1, predicted_n)
    return {"prompt_n": prompt_n, "prompt_ms": prompt_ms, "prompt_per_token_ms": prompt_ms / max(1, prompt_n),
            "prompt_per_second": 1000.0 * prompt_n / prompt_ms, "predicted_n": predicted_n,
            "predicted_ms": predicted_ms, "predicted_per_token_ms": predicted_ms / max(1, predicted_n),
            "predicted_per_second": 1000.0 * predicted_n / predicted_ms}


def _wanted_logprobs(enabled: bool, body: dict, kind: str) -> int | None:
    """None when no logprobs are to be sent, else how many alternatives per token."""
    if not enabled:
        return None
    value = body.get("logprobs")
    if kind == "chat":
        if value is not True:
            return None
        top = body.get("top_logprobs")
        return top if isinstance(top, int) and not isinstance(top, bool) else 0
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _logprob_entry(token: str, i: int, top: int) -> dict:
    """One chat-shaped logprob entry; alternatives sorted most likely first."""
    value = round(-0.125 * (i + 1), 6)
    entry: dict[str, Any] = {"token": token, "logprob": value, "bytes": list(token.encode("utf-8"))}
    alternatives = [{"token": token, "logprob": value, "bytes": list(token.encode("utf-8"))}]
    for j in range(1, top):
        alt = f"alt{j}é"
        alternatives.append({"token": alt, "logprob": value - j, "bytes": list(alt.encode("utf-8"))})
    entry["top_logprobs"] = alternatives[:top]
    return entry


def _logprobs_for(kind: str, tokens: list[str], top: int, start: int = 0) -> dict:
    """A choice's ``logprobs``: chat shape, or the legacy completions shape."""
    entries = [_logprob_entry(t, start + i, top) for i, t in enumerate(tokens)]
    if kind == "chat":
        return {"content": entries}
    return {"tokens": tokens, "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{a["token"]: a["logprob"] for a in e["top_logprobs"]} for e in entries] if top else None}
