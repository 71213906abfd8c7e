#!/usr/bin/env bash
# wrk on every load host at once, against a bridge fleet's load balancer (issue 16).
#
#   perf/wrk_fleet.sh http://fleet-lb.internal loadgen-1 loadgen-2 loadgen-3
#
# Each host (reached with ssh, wrk installed: apt-get install wrk) runs the same bounded wrk:
# non-streamed /api/chat for DURATION seconds with CONNECTIONS connections and one thread per
# core; this script prints each host's figures and the sum of requests. Compare the sum with the
# fleet's increase of sum(bridge_http_requests_total) in Prometheus over the run (wait two push
# intervals in push mode). wrk cuts the requests in flight when it stops (a few per connection
# at most), so the two agree to within the connection count, not exactly: for exact counts use
# perf/locustfile.py (--stop-timeout) or perf/fleet.py's deadline script on one host.
set -euo pipefail
url="${1:?usage: $0 URL HOST...}"; shift
[ $# -ge 1 ] || { echo "usage: $0 URL HOST..." >&2; exit 2; }
DURATION="${DURATION:-60}"
CONNECTIONS="${CONNECTIONS:-64}"
MODEL="${MODEL:-demo}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cat > "$out/script.lua" <<LUA
wrk.method = "POST"
wrk.body = [[{"model":"$MODEL","stream":false,"messages":[{"role":"user","content":"hi"}]}]]
wrk.headers["Content-Type"] = "application/json"
LUA
for host in "$@"; do
  # shellcheck disable=SC2029  # expanded here on purpose
  ssh -o BatchMode=yes "$host" "cat > /tmp/bridge-wrk.lua && wrk -t\$(nproc) -c$CONNECTIONS -d${DURATION}s \
    --timeout 10s --latency -s /tmp/bridge-wrk.lua '$url/api/chat'" < "$out/script.lua" > "$out/$host.txt" 2>&1 &
done
wait
total=0
for host in "$@"; do
  echo "== $host"; cat "$out/$host.txt"
  n="$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' "$out/$host.txt")"
  total=$((total + ${n:-0}))
done
echo "== all hosts: $total requests in ${DURATION} s"
