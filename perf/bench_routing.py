"""Per-request cost of choosing a backend and keeping its health (issue 14); target < 0.1 ms.

    .venv/bin/python -m perf.bench_routing

Measures, in one process and without I/O, exactly what ``BackendPool.open`` does per request around
the HTTP call: which backends serve the model (``serving``), their order (``Router.order``:
priority, load per weight, smooth weighted round robin, breakers), the attempt's bookkeeping
(in flight +1/-1, breaker success, circuit gauge check) and the metrics it reports (per-backend
attempt counter and in-flight gauge, prometheus-client children). Three cases: one backend (no
BACKENDS_FILE), 3 backends sharing a model, and 16 backends in 4 priority groups with one breaker
open. Prints microseconds per request (best of 5 runs of 20,000 requests).
"""

from __future__ import annotations

import time

from bridge.backend_pool import BackendPool
from bridge.backends import Backend
from bridge.config import Settings
from bridge.metrics import Metrics

TARGET_MS = 0.1
REQUESTS = 20_000
RUNS = 5


def pool_of(n: int, *, groups: int = 1) -> tuple[BackendPool, str]:
    backends = tuple(Backend(name=f"b{i}", base_url=f"http://127.0.0.1:{9000 + i}/v1", models=("m1", f"own{i}"),
                             priority=i % groups, weight=1 + i % 3) for i in range(n))
    settings = Settings(demo_backend=False, backends=backends, backend_failure_threshold=3, backend_cooldown_s=30)
    metrics = Metrics(window=100, version="bench", multiproc_dir=None, backends=tuple(b.name for b in backends))
    pool = BackendPool(settings, report=metrics)
    pool.ids()  # the catalogue, once (configured models: no I/O)
    return pool, "m1"


def per_request_us(pool: BackendPool, model: str) -> float:
    """One request's routing and health bookkeeping, as in BackendPool.open (no HTTP call)."""
    serving, router = pool.serving, pool.router
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(REQUESTS):
            candidates = serving(model)
            order = candidates if len(candidates) == 1 else router.order(candidates)
            index = order[0]
            pool._begin(index)
            router.success(index)
            pool._attempted(index, "ok")
            pool._end(index)
        best = min(best, (time.perf_counter() - started) / REQUESTS * 1e6)
    return best


def main() -> None:
    cases = []
    single = Settings(demo_backend=False, backend_url="http://127.0.0.1:9/v1")
    one = BackendPool(single, report=Metrics(window=100, version="bench", multiproc_dir=None, backends=("default",)))
    cases.append(("1 backend (no BACKENDS_FILE)", one, "m1"))
    cases.append(("3 backends, one model on all", *pool_of(3)))
    big, model = pool_of(16, groups=4)
    for _ in range(3):
        big.router.failure(0)  # one breaker open
    cases.append(("16 backends, 4 priority groups, 1 open", big, model))
    print(f"routing + health cost per request (best of {RUNS} x {REQUESTS:,}; target < {TARGET_MS} ms)")
    worst = 0.0
    for label, pool, model in cases:
        us = per_request_us(pool, model)
        worst = max(worst, us)
        print(f"  {label:<42} {us:7.2f} us  ({us / 1000:.4f} ms)")
    print(f"worst case {worst / 1000:.4f} ms: {'under' if worst / 1000 < TARGET_MS else 'OVER'} the target")


if __name__ == "__main__":
    main()
