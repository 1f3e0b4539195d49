#!/usr/bin/env bash
# The HTTP benchmark, in one command: bash benches/http/run.sh [SECONDS] [CONNECTIONS]
#
# Starts the floor (a bare axum server that parses the same JSON and answers a constant) and
# gatehouse (release builds), drives each with wrk at a fixed concurrency, and prints
# throughput, p50/p99 latency and the ratios to the floor; then the p99 of gatehouse held at
# half of its peak rate, and its memory after the cache-miss run.
# Needs wrk: `apt-get install wrk` (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-32}
FLOOR=127.0.0.1:18100
GATE=127.0.0.1:18180
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin gatehouse --example floor

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
./target/release/examples/floor "$FLOOR" & pids+=($!)
./target/release/gatehouse serve --listen "$GATE" --cache-capacity 1000000 2>/dev/null & pids+=($!)
gate_pid=$!
for addr in $FLOOR $GATE; do
  until curl -s -o /dev/null "http://$addr/" ; do sleep 0.1; done
done

run() { # name addr mode [extra wrk args]
  local name=$1 addr=$2 mode=$3; shift 3
  MODE=$mode wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s benches/http/questions.lua "$@" "http://$addr" \
    | sed -n "s/^RESULT /$name /p"
}

results=$(
  run floor "$FLOOR" hit
  run hit "$GATE" hit
  run miss "$GATE" miss
  run floor-batch "$FLOOR" batch
  run batch "$GATE" batch
)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$gate_pid/status")
entries=$(curl -s "http://$GATE/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["entries"])')

echo
echo "wrk, 1 thread, $CONNS connections, ${SECS}s each, on $(nproc) cores"
echo "$results" | awk '
  { split($0, f, " "); name=f[1]; for (i=2;i<=NF;i++) { split(f[i], kv, "="); v[name, kv[1]]=kv[2] } names[++n]=name }
  END {
    printf "%-12s %12s %10s %10s %8s %8s\n", "scenario", "req/s", "p50 µs", "p99 µs", "errors", "× floor"
    for (i=1;i<=n;i++) {
      name=names[i]; base=(name ~ /batch/) ? "floor-batch" : "floor"
      printf "%-12s %12.0f %10d %10d %8d %8.2f\n", name, v[name,"rps"], v[name,"p50_us"], v[name,"p99_us"], v[name,"errors"]+v[name,"non2xx"], v[name,"rps"]/v[base,"rps"]
    }
    printf "batch: %.0f decisions/s (100 per request)\n", v["batch","rps"]*100
    hit=v["hit","rps"]; miss=v["miss","rps"]
    print "HALF_HIT=" int(hit/2) > "/dev/stderr"
  }'
echo "gatehouse RSS after the runs: $((rss_kib / 1024)) MiB holding $entries cached decisions"
