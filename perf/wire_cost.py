"""CPU per backend call, ``requests`` wire vs ``HTTPWire``: ``.venv/bin/python -m perf.wire_cost [--calls 2000]``.

The same ``UpstreamClient`` over each transport (``bridge.transport.RequestsTransport``,
``bridge.http_wire.HTTPWire``), sequential calls from one gevent-patched process to the perf fake
backend (gunicorn gevent, ``perf.fake_backend``), used as the routes use it: a non-streamed call
read as JSON then released, and a 16-token stream read with ``iter_bytes`` to its end then
released. Process CPU time per call (``time.process_time``; the fake backend runs in another
process), the two transports alternating in rounds so machine noise hits both alike.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from perf.fake_backend import model_name  # noqa: E402
from perf.procs import FakeBackendProcess  # noqa: E402

_ROUNDS = 10
_WARMUP = 100


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per kind and transport (split into rounds)")
    args = ap.parse_args(argv)
    from bridge.config import Settings
    from bridge.http_wire import HTTPWire
    from bridge.transport import RequestsTransport
    from bridge.upstream import Deadline, UpstreamClient

    tmp = Path(tempfile.mkdtemp(prefix="bridge-wire-"))
    fake = FakeBackendProcess(tmp).wait_ready()
    try:
        settings = Settings(backend_url=fake.url + "/v1", demo_backend=False)
        clients = {"requests": UpstreamClient(settings, transport=RequestsTransport(settings)),
                   "http_wire": UpstreamClient(settings, transport=HTTPWire(settings))}
        kinds = {"nonstream": {"model": model_name(8), "messages": [{"role": "user", "content": "hi"}]},
                 "stream16": {"model": model_name(16), "messages": [{"role": "user", "content": "hi"}],
                              "stream": True}}

        def call(client: UpstreamClient, body: dict, stream: bool) -> int:
            resp = client.open("POST", "/chat/completions", json_body=body, stream=stream,
                               deadline=Deadline.after(30))
            if stream:
                size = sum(len(data) for data in resp.iter_bytes())
            else:
                size = len(resp.json()["choices"])
            resp.release()
            return size

        per_round = max(1, args.calls // _ROUNDS)
        cpu = {(k, t): 0.0 for k in kinds for t in clients}
        wall = dict(cpu)
        for kind, body in kinds.items():
            stream = bool(body.get("stream"))
            for client in clients.values():
                for _ in range(_WARMUP):
                    call(client, body, stream)
            for r in range(_ROUNDS):
                order = list(clients.items()) if r % 2 == 0 else list(reversed(clients.items()))
                for name, client in order:
                    c0, w0 = time.process_time(), time.perf_counter()
                    for _ in range(per_round):
                        call(client, body, stream)
                    cpu[(kind, name)] += time.process_time() - c0
                    wall[(kind, name)] += time.perf_counter() - w0
        calls = per_round * _ROUNDS
        print(f"\n{calls} calls per kind and transport, {_ROUNDS} alternating rounds; µs per call\n")
        print("| call | requests CPU | HTTPWire CPU | ratio | requests wall | HTTPWire wall |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind in kinds:
            r_cpu, w_cpu = (cpu[(kind, t)] * 1e6 / calls for t in ("requests", "http_wire"))
            r_wall, w_wall = (wall[(kind, t)] * 1e6 / calls for t in ("requests", "http_wire"))
            print(f"| {kind} | {r_cpu:.0f} | {w_cpu:.0f} | {r_cpu / w_cpu:.1f}x | {r_wall:.0f} | {w_wall:.0f} |")
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
