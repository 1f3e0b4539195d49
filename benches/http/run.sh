#!/usr/bin/env bash
# The HTTP benchmark, in one command: bash benches/http/run.sh [SECONDS] [CONNECTIONS]
#
# Starts the floor (a bare axum server that parses the same JSON and answers a constant) and
# gatehouse (release builds), drives each with wrk at a fixed concurrency, and prints
# throughput, p50/p99 latency and the ratios to the floor; then gatehouse's p99 held at half
# of its peak rate (wrk paced by DELAY_MS), and the memory of a fresh gatehouse holding
# 100 000 cached decisions.
# Needs wrk: `apt-get install wrk` (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-32}
FLOOR=127.0.0.1:18100
GATE=127.0.0.1:18180
STORED=127.0.0.1:18181
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin gatehouse --example floor

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
./target/release/examples/floor "$FLOOR" & pids+=($!)
./target/release/gatehouse serve --listen "$GATE" --cache-capacity 1000000 2>/dev/null & pids+=($!)
gate_pid=$!
# A second gatehouse with 3 000 stored entities (500 organizations, their five groups each),
# none of which the questions name: a miss must not cost more for them.
stored_file=$(mktemp --suffix=.json)
python3 - "$stored_file" <<'PY'
import json, sys
entities = []
for o in range(500):
    groups = {k: {"type": "Group", "id": f"org{o}.{k}"} for k in ["admins", "data_owners", "editors", "viewers", "members"]}
    entities.append({"uid": {"type": "Organization", "id": f"org{o}"}, "attrs": groups, "parents": []})
    entities += [{"uid": g, "attrs": {}, "parents": []} for g in groups.values()]
json.dump(entities, open(sys.argv[1], "w"))
PY
./target/release/gatehouse serve --listen "$STORED" --entities "$stored_file" --cache-capacity 1000000 2>/dev/null & pids+=($!)
stored_pid=$!
for addr in $FLOOR $GATE $STORED; do
  until curl -s -o /dev/null "http://$addr/" ; do sleep 0.1; done
done

run() { # name addr mode [extra wrk args]
  local name=$1 addr=$2 mode=$3; shift 3
  RUN=$name MODE=$mode wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s benches/http/questions.lua "$@" "http://$addr" \
    | sed -n "s/^RESULT /$name /p"
}

results=$(
  run floor "$FLOOR" hit
  run hit "$GATE" hit
  run miss "$GATE" miss
  run miss-stored "$STORED" miss
  run floor-batch "$FLOOR" batch
  run batch "$GATE" batch
)
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
  }'

# Half of the peak: each connection waits 1 ms before each request, so the number of
# connections sets the rate. A 3 s calibration run measures one connection count's rate,
# then the count is scaled to reach half of the peak.
rate() { echo "$1" | awk '{ for (i=2;i<=NF;i++) if ($i ~ /^rps=/) { sub("rps=", "", $i); print int($i) } }'; }
echo
echo "held at half of the peak (wrk paced, 1 ms between requests per connection):"
for scenario in hit miss; do
  half=$(( $(rate "$(echo "$results" | grep "^$scenario ")") / 2 ))
  conns=$(( half / 500 + 1 ))
  got=$(rate "$(SECS=3 DELAY_MS=1 run calibrate "$GATE" "$scenario" -c"$conns" -d3s)")
  conns=$(( (conns * half + got - 1) / got ))
  DELAY_MS=1 run "$scenario-half" "$GATE" "$scenario" -c"$conns" | awk -v h="$half" -v c="$conns" '
    { for (i=2;i<=NF;i++) { split($i, kv, "="); v[kv[1]]=kv[2] }
      printf "%-10s target %6d req/s, %3d connections: %6.0f req/s, p50 %5d µs, p99 %5d µs, errors %d\n", $1, h, c, v["rps"], v["p50_us"], v["p99_us"], v["errors"]+v["non2xx"] }'
done

# Memory: a fresh gatehouse filled with 100 000 distinct decisions by the miss load.
kill "$gate_pid" "$stored_pid"; wait "$gate_pid" "$stored_pid" 2>/dev/null || true
rm -f "$stored_file"
./target/release/gatehouse serve --listen "$GATE" --cache-capacity 100000 2>/dev/null & pids+=($!)
gate_pid=$!
until curl -s -o /dev/null "http://$GATE/"; do sleep 0.1; done
idle_kib=$(awk '/VmRSS/ {print $2}' "/proc/$gate_pid/status")
entries=0
for round in 1 2 3 4 5 6 7 8 9 10; do
  RUN=mem$round MODE=miss wrk -t1 -c"$CONNS" -d5s -s benches/http/questions.lua "http://$GATE" > /dev/null
  entries=$(curl -s "http://$GATE/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["entries"])')
  # moka evicts as it nears capacity: 99 % full is full.
  [ "$entries" -ge 99000 ] && break
done
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$gate_pid/status")
echo
echo "memory: RSS $((idle_kib / 1024)) MiB idle, $((rss_kib / 1024)) MiB holding $entries cached decisions (--cache-capacity 100000)"
