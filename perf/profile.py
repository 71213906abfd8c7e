"""Profile one bridge worker under load: ``.venv/bin/python -m perf.profile nonstream|stream16 [--seconds 10]``.

Starts the fake backend and a bridge (Procfile command, 2 workers, monitoring on), drives it with
wrk (c=8) and samples one worker with py-spy (``record --gil --nonblocking``, 100 Hz): a flame
graph ``perf/profiles/<name>.svg`` and, from the other worker, raw stacks aggregated into
``perf/profiles/<name>.top.txt`` (inclusive and self share of samples per function). Bounded: the
whole thing takes about ``seconds + 15`` s. Needs py-spy (requirements-dev) and root or ptrace rights.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perf.fake_backend import model_name
from perf.procs import FakeBackendProcess
from tests.bridgeproc import REPO, BridgeProcess

PROFILES = REPO / "perf" / "profiles"


def aggregate(raw: Path, top: int = 40) -> str:
    """Inclusive/self share per frame from py-spy's raw (collapsed) output."""
    incl: collections.Counter = collections.Counter()
    self_: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
    out = [f"samples: {total}", "", "inclusive share (top):"]
    out += [f"{100 * n / total:6.1f} %  {f}" for f, n in incl.most_common(top)]
    out += ["", "self share (top):"]
    out += [f"{100 * n / total:6.1f} %  {f}" for f, n in self_.most_common(top)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("nonstream", "stream16"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--name", default=None)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--metrics-off", action="store_true", help="METRICS_ENABLED=false (what monitoring costs)")
    ap.add_argument("--tokens", type=int, default=16, help="stream length (a model the fake backend lists)")
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    name = args.name or f"bridge-{args.kind}"
    PROFILES.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bridge-prof-"))
    fake = FakeBackendProcess(tmp).wait_ready()
    metrics = "false" if args.metrics_off else "true"
    bridge = BridgeProcess({"OPENAI_API_BASE_URL": fake.url, "METRICS_ENABLED": metrics}, workers=2,
                           tmp_dir=tmp, log_name="bridge").wait_ready()
    try:
        stream = args.kind != "nonstream"
        body = ('{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream":%s}'
                % (model_name(args.tokens if stream else 8), "true" if stream else "false"))
        script = tmp / "post.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = [[{body}]]\n'
                          'wrk.headers["Content-Type"] = "application/json"\n')
        url = f"{bridge.url}/api/chat"
        subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-s", str(script), url], capture_output=True, timeout=30)
        pids = [c.pid for c in __import__("psutil").Process(bridge.proc.pid).children()]
        load = subprocess.Popen(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds + 3}s", "-s",
                                 str(script), url], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        raw = PROFILES / f"{name}.raw"
        spies = [subprocess.Popen([pyspy, "record", "--gil", "--nonblocking", "-r", "100", "-d", str(args.seconds),
                                   "-p", str(pids[0]), "-o", str(PROFILES / f"{name}.svg")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        if len(pids) > 1:
            spies.append(subprocess.Popen([pyspy, "record", "--gil", "--nonblocking", "-r", "100", "-d",
                                           str(args.seconds), "-f", "raw", "-p", str(pids[1]), "-o", str(raw)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for s in spies:
            s.wait(args.seconds + 30)
        out, _ = load.communicate(timeout=args.seconds + 30)
        rps = [line for line in out.splitlines() if "Requests/sec" in line]
        if raw.exists():
            (PROFILES / f"{name}.top.txt").write_text(f"{args.kind}, wrk c={args.connections}: {rps}\n\n"
                                                      + aggregate(raw))
        print(rps, PROFILES / f"{name}.top.txt")
    finally:
        bridge.stop()
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
