"""CPU cost of one upstream call, by HTTP client: ``.venv/bin/python -m perf.client_cost [--calls 2000]``.

What the profile of a bridge worker says is the largest share of a request (the one backend call),
measured alone: sequential calls from one gevent process to the fake backend, process CPU time
per call (``time.process_time``), for

* ``requests`` ``Session.post`` (what the bare proxy anchor does),
* the bridge's ``UpstreamClient.open`` (request prepared once, pooled adapter; ``bridge/upstream.py``),
* a raw HTTP/1.1 keep-alive exchange on one gevent socket (the floor for any Python client: one
  ``sendall``, reads until the body is complete, no header parsing beyond what framing needs).

Non-streamed (8 tokens) and 16-token streams (body read to its end). Bounded by ``--calls``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402

from perf.fake_backend import model_name  # noqa: E402
from perf.procs import FakeBackendProcess  # noqa: E402


def _body(stream: bool) -> bytes:
    return json.dumps({"model": model_name(16 if stream else 8), "messages": [{"role": "user", "content": "hi"}],
                       "stream": stream}, separators=(",", ":")).encode()


def raw_call(sock: socket.socket, port: int, body: bytes, buf: bytearray) -> int:
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            continue
        lower = head.lower()
        if b"content-length:" in lower:
            n = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            if len(rest) >= n:
                return len(rest)
        elif rest.endswith(b"0\r\n\r\n"):
            return len(rest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bridge-client-"))
    fake = FakeBackendProcess(tmp).wait_ready()
    out = {}
    try:
        from bridge.config import Settings
        from bridge.upstream import Deadline, UpstreamClient

        settings = Settings.from_env({"OPENAI_API_BASE_URL": fake.url}) if hasattr(Settings, "from_env") else None
        client = UpstreamClient(settings) if settings is not None else None
        session = requests.Session()
        session.trust_env = False
        sock = socket.create_connection(("127.0.0.1", fake.port))
        buf = bytearray(65536)
        for stream in (False, True):
            body = _body(stream)
            obj = json.loads(body)
            kind = "stream16" if stream else "nonstream"

            def via_requests(body=body, stream=stream):
                r = session.post(fake.url + "/v1/chat/completions", data=body, stream=stream,
                                 headers={"Content-Type": "application/json"})
                for _ in r.iter_content(chunk_size=None):
                    pass
                r.close()

            def via_bridge(obj=obj, stream=stream):
                r = client.open("POST", "/chat/completions", json_body=obj, stream=stream,
                                deadline=Deadline.after(30))
                for _ in r.iter_bytes() if stream else (r.content,):
                    pass
                r.close()

            def via_raw(body=body):
                raw_call(sock, fake.port, body, buf)

            for name, fn in (("requests", via_requests), ("bridge_upstream", via_bridge), ("raw_socket", via_raw)):
                if fn is via_bridge and client is None:
                    continue
                for _ in range(50):
                    fn()
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(args.calls):
                    fn()
                out[f"{kind}_{name}"] = {"cpu_us_per_call": round((time.process_time() - c0) * 1e6 / args.calls, 1),
                                         "wall_us_per_call": round((time.perf_counter() - w0) * 1e6 / args.calls, 1)}
                print(kind, name, out[f"{kind}_{name}"], flush=True)
        sock.close()
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
