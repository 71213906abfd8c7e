"""bridge/metrics/mmap_value.py: batched writes store exactly what prometheus_client's own
multiprocess value stores (same files, same merged scrape), a forked child writes its own file, and
the batch's bucket choice matches Histogram.observe for every edge (bounds, +Inf, NaN, negatives).

Multiprocess mode is decided when prometheus_client is imported, so those cases run in a fresh
interpreter; the bucket case runs in process against the in-memory value."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics.mmap_value import add_all
from bridge.metrics.prom import _Batch

ROOT = Path(__file__).resolve().parents[2]

# Records a fixed set of updates, either through prometheus_client's own value (one call per
# update) or through bridge's (installed, then one batch), and prints the merged exposition.
SAME_UPDATES = textwrap.dedent(
    """
    import os, sys
    from bridge.metrics import mmap_value
    if sys.argv[1] == "bridge":
        assert mmap_value.install()
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

    reg = CollectorRegistry()
    c = Counter("c", "c", ["a"], registry=reg)
    g = Gauge("g", "g", ["a"], multiprocess_mode="livesum", registry=reg)
    h = Histogram("h", "h", ["a"], buckets=(0.1, 1.0, 10.0), registry=reg)
    amounts = [0.0, 0.1, 0.10000001, 1.0, 5.0, 10.0, 11.0, float("inf"), -3.0]
    if sys.argv[1] == "bridge":
        from bridge.metrics.prom import _Batch
        class Prom:
            def _targets(self, metric, labels):
                s = metric.labels(*labels)
                if isinstance(s, Histogram):
                    return s._sum, tuple(s._upper_bounds), tuple(s._buckets)
                return s._value, (), ()
        batch = _Batch(Prom())
        for i, x in enumerate(amounts):
            batch.inc(c, i, "x")
            batch.inc(g, 1 if i % 2 else -1, "y")
            batch.observe(h, x, "z")
        mmap_value.add_all(batch.updates)
        c.labels("x").inc(2.5)      # single updates still work
        g.labels("y").set(7)
    else:
        for i, x in enumerate(amounts):
            c.labels("x").inc(i)
            g.labels("y").inc(1 if i % 2 else -1)
            h.labels("z").observe(x)
        c.labels("x").inc(2.5)
        g.labels("y").set(7)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape)
    sys.stdout.write(generate_latest(scrape).decode())
    """
)

FORK = textwrap.dedent(
    """
    import json, os
    from bridge.metrics import mmap_value
    assert mmap_value.install()
    from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
    c = Counter("c", "c", ["a"], registry=CollectorRegistry())
    c.labels("x").inc(1)                      # the parent's file
    pid = os.fork()
    if pid == 0:
        mmap_value.add_all([(c.labels("x")._value, 10)])   # a batch, first thing after the fork
        c.labels("x").inc(100)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    c.labels("x").inc(1000)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape)
    total = [s.value for f in scrape.collect() for s in f.samples if s.name == "c_total"]
    files = sorted(n for n in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    print(json.dumps({"total": total, "files": files, "parent": os.getpid(), "child": pid}))
    """
)

# A series made first, then enough others to grow the file past its first 1 MiB (MmapedDict maps
# it anew), then the first one updated again: the value lands in the new mapping, at its offset.
GROWN = textwrap.dedent(
    """
    import sys
    from bridge.metrics import mmap_value
    if sys.argv[1] == "bridge":
        assert mmap_value.install()
    from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
    c = Counter("c", "c", ["a"], registry=CollectorRegistry())
    first = c.labels("first")
    first.inc(1)
    for i in range(5000):
        c.labels(f"{i:0200d}").inc(i)
    if sys.argv[1] == "bridge":
        mmap_value.add_all([(first._value, 41)])
    else:
        first.inc(41)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape)
    sys.stdout.write(generate_latest(scrape).decode())
    """
)


def run(script: str, tmp_path: Path, *args: str) -> str:
    d = tmp_path / ("prom-" + "-".join(args or ("x",)))
    d.mkdir()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(d), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_batched_writes_store_what_prometheus_client_stores(tmp_path):
    ours = samples(run(SAME_UPDATES, tmp_path, "bridge"))
    theirs = samples(run(SAME_UPDATES, tmp_path, "stock"))
    assert ours == theirs
    assert ours[("c_total", (("a", "x"),))] == sum(range(9)) + 2.5
    assert ours[("h_count", (("a", "z"),))] == 9
    assert ours[("h_bucket", (("a", "z"), ("le", "1.0")))] == 5   # -3, 0, 0.1, 0.10000001, 1.0


def test_a_value_written_after_its_file_grew_lands_in_the_new_mapping(tmp_path):
    ours = samples(run(GROWN, tmp_path, "bridge"))
    assert max(f.stat().st_size for f in (tmp_path / "prom-bridge").iterdir()) > 1 << 20  # it did grow
    assert ours == samples(run(GROWN, tmp_path, "stock"))
    assert ours[("c_total", (("a", "first"),))] == 42


def test_a_forked_child_writes_its_own_file_never_the_parents(tmp_path):
    out = json.loads(run(FORK, tmp_path).strip().splitlines()[-1])
    assert out["total"] == [1111.0]
    assert out["files"] == sorted([f"counter_{out['parent']}.db", f"counter_{out['child']}.db"])


def test_the_batch_picks_the_bucket_histogram_observe_picks():
    bounds = (0.005, 0.1, 1.0, 2.5, 60.0)
    ours = Histogram("ours", "h", buckets=bounds, registry=CollectorRegistry())
    theirs = Histogram("theirs", "h", buckets=bounds, registry=CollectorRegistry())

    class Prom:
        def _targets(self, metric, labels):
            return metric._sum, tuple(metric._upper_bounds), tuple(metric._buckets)

    amounts = [0.0, 0.005, 0.0050001, 1.0, 2.4999, 60.0, 60.01, math.inf, -1.0, math.nan, 1e-300]
    batch = _Batch(Prom())
    for x in amounts:
        batch.observe(ours, x)
        theirs.observe(x)
    add_all(batch.updates)  # in-memory values (no multiprocess dir here): one by one
    assert [b.get() for b in ours._buckets] == [b.get() for b in theirs._buckets]
    assert math.isnan(ours._sum.get()) and math.isnan(theirs._sum.get())
    assert sum(b.get() for b in ours._buckets) == len(amounts) - 1  # NaN is counted in no bucket
