"""A small gevent load driver: raw HTTP/1.1 keep-alive client with per-frame arrival times, plus wrk.

The Python side measures what wrk cannot: time to first token and every frame's transit time in
streams (the fake backend stamps each token with its send time on ``CLOCK_MONOTONIC``, which is
machine-wide, so ``arrival - stamp`` is the frame's one-way delay through whatever sits between).
It speaks just enough HTTP/1.1 (Content-Length and chunked bodies, keep-alive) to stay cheap:
no ``requests`` on the client side, so the client's own cost is small and the same for both paths.

Every call here is bounded: a fixed request count or a deadline, and a socket timeout.
The caller must have run ``gevent.monkey.patch_all()`` (``perf.run`` and the smoke test do).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gevent
from gevent.pool import Pool

__all__ = ["Target", "Result", "StreamResult", "Conn", "one_request", "paced_streams",
           "concurrent_streams", "wrk", "WrkResult", "percentile"]

_TOKEN = re.compile(rb"(\d+)@(\d+) ")
SOCKET_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """One endpoint and request body: the bridge's ``/api/chat`` or the backend's own API."""

    name: str
    host: str
    port: int
    path: str
    body: dict | None  # None: a GET without a body
    stream: bool

    def request_bytes(self) -> bytes:
        data = json.dumps(self.body, separators=(",", ":")).encode()
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        return head + data

    def complete(self, body: bytes) -> bool:
        """True when a body is a whole, successful answer (done line / [DONE] / a JSON object)."""
        if not self.stream:
            return body.startswith(b"{") and b'"error"' not in body[:20]
        if self.path.startswith("/api/"):
            return b'"done":true' in body[-2000:] and b'"error"' not in body
        return body.rstrip().endswith(b"data: [DONE]")


@dataclass
class Result:
    """One request as the client saw it (times in ns on CLOCK_MONOTONIC)."""

    ok: bool
    status: int
    sent_ns: int
    end_ns: int
    tokens: list[tuple[int, int, int]] = field(default_factory=list)  # (index, stamp_ns, arrival_ns)
    error: str = ""

    @property
    def latency_s(self) -> float:
        return (self.end_ns - self.sent_ns) / 1e9

    @property
    def ttft_s(self) -> float | None:
        return (self.tokens[0][2] - self.sent_ns) / 1e9 if self.tokens else None

    def transits_s(self) -> list[float]:
        """Per frame: arrival minus the backend's send stamp."""
        return [(arr - stamp) / 1e9 for _, stamp, arr in self.tokens]

    def gaps_s(self) -> list[float]:
        return [(b[2] - a[2]) / 1e9 for a, b in zip(self.tokens, self.tokens[1:])]


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, target: Target, raw: bytes | None = None, *, timed: bool = False) -> Result:
        """Send one request, read the whole answer; ``timed`` records each token's arrival."""
        sock = self.sock or self._connect()
        raw = raw or target.request_bytes()
        sent = time.monotonic_ns()
        try:
            sock.sendall(raw)
            status, body, marks, keep = _read_response(sock, timed)
        except (OSError, ValueError) as exc:
            self.close()
            return Result(False, 0, sent, time.monotonic_ns(), error=f"{type(exc).__name__}: {exc}")
        end = time.monotonic_ns()
        if not keep:
            self.close()
        res = Result(status == 200 and target.complete(body), status, sent, end)
        if not res.ok:
            res.error = f"status {status}: {body[:200]!r}"
        if timed:
            res.tokens = _tokens(body, marks)
        return res


def _read_response(sock: socket.socket, timed: bool) -> tuple[int, bytes, list[tuple[int, int]], bool]:
    """(status, decoded body, [(end offset in decoded body, arrival ns)], keep-alive)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ValueError("connection closed before headers")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip().lower()
    keep = headers.get(b"connection") != b"close"
    marks: list[tuple[int, int]] = []
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        body = rest
        while len(body) < n:
            data = sock.recv(65536)
            if not data:
                raise ValueError("connection closed mid-body")
            body += data
        if timed:
            marks.append((len(body), time.monotonic_ns()))
        return status, body[:n], marks, keep
    if headers.get(b"transfer-encoding") != b"chunked":  # close-delimited
        body = rest
        while True:
            data = sock.recv(65536)
            if not data:
                break
            body += data
        return status, body, [(len(body), time.monotonic_ns())], False
    # chunked: decode as bytes arrive, noting when each piece of decoded body arrived
    out = bytearray()
    raw = rest
    now = time.monotonic_ns()
    while True:
        # decode every complete chunk in raw
        while True:
            nl = raw.find(b"\r\n")
            if nl < 0:
                break
            size = int(raw[:nl].split(b";")[0], 16)
            if size == 0:
                if raw.find(b"\r\n", nl + 2) < 0:
                    break  # trailers / final CRLF not complete yet
                if timed:
                    marks.append((len(out), now))
                return status, bytes(out), marks, keep
            if len(raw) < nl + 2 + size + 2:
                break
            out += raw[nl + 2: nl + 2 + size]
            raw = raw[nl + 2 + size + 2:]
            if timed:
                marks.append((len(out), now))
        data = sock.recv(65536)
        if not data:
            raise ValueError("connection closed mid-stream")
        now = time.monotonic_ns()
        raw += data


def _tokens(body: bytes, marks: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    out = []
    j = 0
    for m in _TOKEN.finditer(body):
        end = m.end()
        while j < len(marks) - 1 and marks[j][0] < end:
            j += 1
        stamp = int(m.group(2))
        if stamp:  # non-streamed bodies carry 0 stamps
            out.append((int(m.group(1)), stamp, marks[j][1] if marks else 0))
    return out


def one_request(target: Target, *, timed: bool = False) -> Result:
    conn = Conn(target.host, target.port)
    try:
        return conn.request(target, timed=timed)
    finally:
        conn.close()


@dataclass
class StreamResult:
    results: list[Result]
    wall_s: float
    peak_open: int = 0

    @property
    def errors(self) -> list[Result]:
        return [r for r in self.results if not r.ok]


def paced_streams(target: Target, *, concurrency: int, count: int, deadline_s: float) -> StreamResult:
    """``count`` timed streams, ``concurrency`` at a time (one keep-alive connection each)."""
    results: list[Result] = []
    left = [count]
    start = time.monotonic()

    def worker() -> None:
        conn = Conn(target.host, target.port)
        raw = target.request_bytes()
        try:
            while left[0] > 0 and time.monotonic() - start < deadline_s:
                left[0] -= 1
                results.append(conn.request(target, raw, timed=True))
        finally:
            conn.close()

    jobs = [gevent.spawn(worker) for _ in range(concurrency)]
    gevent.joinall(jobs, timeout=deadline_s + SOCKET_TIMEOUT_S)
    gevent.killall(jobs, timeout=1)
    return StreamResult(results, time.monotonic() - start)


def concurrent_streams(target: Target, *, n: int, ramp_s: float, deadline_s: float) -> StreamResult:
    """``n`` simultaneous streams (one connection each), opened over ``ramp_s``; counts the peak open."""
    results: list[Result] = []
    state = {"open": 0, "peak": 0}
    start = time.monotonic()
    raw = target.request_bytes()

    def one(i: int) -> None:
        gevent.sleep(ramp_s * i / max(1, n))
        conn = Conn(target.host, target.port)
        state["open"] += 1
        state["peak"] = max(state["peak"], state["open"])
        try:
            results.append(conn.request(target, raw, timed=True))
        finally:
            state["open"] -= 1
            conn.close()

    pool = Pool(n)
    jobs = [pool.spawn(one, i) for i in range(n)]
    gevent.joinall(jobs, timeout=deadline_s)
    missing = sum(1 for j in jobs if not j.dead)
    gevent.killall(jobs, timeout=1)
    for _ in range(missing):
        results.append(Result(False, 0, 0, 0, error="not finished before the deadline"))
    return StreamResult(results, time.monotonic() - start, state["peak"])


# -- wrk ---------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    connections: int
    rps: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int  # non-2xx + socket errors
    duration_s: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str, connections: int) -> WrkResult:
    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        return _ms(m.group(1)) if m else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    requests_, dur = int(m.group(1)), _ms(m.group(2) + m.group(3)) / 1000.0
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return WrkResult(connections, rps, requests_, round(pct("50"), 3), round(pct("90"), 3), round(pct("99"), 3),
                     errors, dur)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(target: Target, *, connections: int, duration_s: float, threads: int = 1) -> WrkResult:
    """One bounded wrk run (POST with the target's body) and its parsed figures."""
    if target.body is None:  # a GET (the hello anchor)
        script = 'wrk.method = "GET"\n'
    else:
        body = json.dumps(target.body, separators=(",", ":"))
        script = ('wrk.method = "POST"\n'
                  f"wrk.body = {json.dumps(body)}\n"
                  'wrk.headers["Content-Type"] = "application/json"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        threads = max(1, min(threads, connections))
        duration_s = max(1, int(round(duration_s)))  # wrk takes whole seconds
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
               "--latency", "-s", path, f"http://{target.host}:{target.port}{target.path}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
        return parse_wrk(proc.stdout, connections)
    finally:
        Path(path).unlink(missing_ok=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]
