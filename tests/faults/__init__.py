"""Fault, bad-input, security and shutdown tests through the real gunicorn bridge.

Helpers shared by the modules here: extra bridges with their own settings, and bounded clients.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path

import requests

from tests.bridgeproc import BridgeProcess

TIMEOUT = (3, 15)  # (connect, read) on every client call
SECRET = "sk-test-secret-key"


def start_bridge(fake, tmp: Path, *, workers: int = 1, name: str = "bridge", **env: str) -> BridgeProcess:
    """A bridge in front of ``fake`` with the session fixture's settings overridden by ``env``."""
    base = {"OPENAI_API_BASE_URL": fake.url, "OPENAI_API_KEY": SECRET, "MAX_RETRIES": "1",
            "RETRY_BACKOFF": "0.05", "STREAM_IDLE_TIMEOUT": "2", "REQUEST_TIMEOUT": "10",
            "MODELS_CACHE_TTL": "0"}
    base.update(env)
    proc = BridgeProcess(base, workers=workers, tmp_dir=tmp, log_name=name)
    try:
        return proc.wait_ready()
    except BaseException:
        proc.stop()
        raise


def chat_body(stream: bool = True, **extra) -> dict:
    return {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}


def ndjson(resp: requests.Response) -> list[dict]:
    """Every line of an NDJSON body (asserting none is blank or invalid)."""
    out = []
    for line in resp.content.split(b"\n")[:-1] if resp.content.endswith(b"\n") else resp.content.split(b"\n"):
        assert line.strip(), f"blank line in NDJSON body {resp.content[:300]!r}"
        out.append(json.loads(line))
    return out


def stream_chat(url: str, body: dict | None = None, path: str = "/api/chat", timeout=TIMEOUT, **kw):
    """POST and read a whole NDJSON stream -> (status, lines, pieces, elapsed_s)."""
    started = time.monotonic()
    resp = requests.post(url + path, json=body or chat_body(), timeout=timeout, **kw)
    elapsed = time.monotonic() - started
    if resp.status_code != 200:
        return resp.status_code, [resp.json()], [], elapsed
    lines = ndjson(resp)
    pieces = [(o.get("message") or {}).get("content") or o.get("response") or "" for o in lines if "error" not in o]
    return resp.status_code, lines, [p for p in pieces if p], elapsed


def token_accounting(sent: list[str], delivered: list[str]) -> tuple[int, int]:
    """(lost, duplicated) comparing token multisets; also checks order of the joined text."""
    s, d = Counter(sent), Counter(delivered)
    lost = sum((s - d).values())
    dup = sum((d - s).values())
    if "".join(delivered) != "".join(sent) and lost == 0 and dup == 0:
        lost = dup = 1  # same pieces, wrong order: count it as broken
    return lost, dup


def raw_request(port: int, data: bytes, *, timeout_s: float = 5.0, read_all: bool = True) -> bytes:
    """Send raw bytes to the bridge and read the reply (until close or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if not read_all and b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                length = _content_length(head)
                if length is not None and len(rest) >= length:
                    break
        return out


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0


def body_of(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[2]
