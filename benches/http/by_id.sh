#!/usr/bin/env bash
# Questions by id (issue 25), in one command: bash benches/http/by_id.sh [SECONDS] [CONNECTIONS]
#
# Imports 1 000 users (each an editor of project p1 and a member of its organization) into a
# SQLite entity database (and into PostgreSQL when GATEHOUSE_BENCH_POSTGRES names one), starts
# gatehouse on it (release build) beside the floor, and measures with wrk, in one run:
#   floor      the floor parsing the 1.5 KB body a host sends today (10 entities);
#   id         questions by id alone (~110 bytes), entities cached after the first round;
#   id-full    the same with `"consistency": "full"`: every question read from the database;
#              both again on one connection, for latency alone;
# each with gatehouse's CPU per request (utime + stime from /proc, over the run) and, for the
# database runs, the reads per question from /metrics. Then the time from a commit (another
# connection's) to the first answer that sees it, and from a commit to a token's answer.
# Needs wrk (`apt-get install wrk`) and sqlite3's Python module.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-32}
FLOOR=127.0.0.1:18100
GATE=127.0.0.1:18190
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin gatehouse --example floor

dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 - "$dir/world.json" <<'PY'
import json, sys
g = lambda i: {"type": "Group", "id": i}
world = [
    {"uid": {"type": "Organization", "id": "acme"}, "parents": [], "attrs": {
        k: g(f"acme.{k}") for k in ["admins", "data_owners", "editors", "viewers", "members"]}},
    {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
        "owner": {"type": "User", "id": "olga"}, "organization": {"type": "Organization", "id": "acme"},
        "admins": g("p1.admins"), "managers": g("p1.managers"), "editors": g("p1.editors"),
        "viewers": g("p1.viewers"), "phase": "processing", "archived": False, "public": False,
        "downloads_enabled": True, "editors_can_share": False}},
] + [{"uid": {"type": "User", "id": f"u{i}"}, "attrs": {"email": f"u{i}@example.com"},
      "parents": [g("p1.editors"), g("acme.members")]} for i in range(1000)]
json.dump(world, open(sys.argv[1], "w"))
PY

./target/release/examples/floor "$FLOOR" & pids+=($!)
until curl -s -o /dev/null "http://$FLOOR/"; do sleep 0.1; done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric() { curl -s "http://$GATE/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

run() { # name addr mode pid
  local name=$1 addr=$2 mode=$3 pid=$4 before after reads_before reads_after out
  before=$(cpu_ticks "$pid")
  reads_before=$( [ "$addr" = "$GATE" ] && metric gatehouse_entities_reads_total || echo 0)
  out=$(RUN=$name MODE=$mode wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s benches/http/questions.lua "http://$addr" | sed -n 's/^RESULT //p')
  after=$(cpu_ticks "$pid")
  reads_after=$( [ "$addr" = "$GATE" ] && metric gatehouse_entities_reads_total || echo 0)
  echo "$out" | awk -v name="$name" -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v secs="$SECS" \
      -v reads=$(( ${reads_after%.*} - ${reads_before%.*} )) '
    { for (i=1;i<=NF;i++) { split($i, kv, "="); v[kv[1]]=kv[2] } }
    END { n = v["rps"] * secs
      printf "%-22s %9.0f %8d %8d %8d %12.1f %10.2f\n", name, v["rps"], v["p50_us"], v["p99_us"],
        v["errors"] + v["non2xx"], ticks / hz * 1e6 / n, reads / n }'
}

serve() { # url → starts gatehouse on it, prints its pid
  ./target/release/gatehouse entities import --entities-db "$1" "$dir/world.json" >/dev/null
  ./target/release/gatehouse serve --listen "$GATE" --entities-db "$1" >"$dir/serve.out" 2>"$dir/serve.log" &
  local pid=$!
  until curl -s -o /dev/null "http://$GATE/readyz"; do sleep 0.1; done
  echo "$pid"
}

echo "wrk, 1 thread, $CONNS connections, ${SECS}s each, on $(nproc) cores"
printf "%-22s %9s %8s %8s %8s %12s %10s\n" scenario "req/s" "p50 µs" "p99 µs" errors "CPU µs/req" "reads/q"
run floor "$FLOOR" hit "${pids[0]}"
databases=("sqlite://$dir/entities.db")
[ -n "${GATEHOUSE_BENCH_POSTGRES:-}" ] && databases+=("$GATEHOUSE_BENCH_POSTGRES")
for url in "${databases[@]}"; do
  backend=${url%%:*}
  gate=$(serve "$url")
  pids+=("$gate")
  # Warm: every user's entities read once.
  RUN=warm MODE=id wrk -t1 -c"$CONNS" -d2s -s benches/http/questions.lua "http://$GATE" >/dev/null
  run "id ($backend)" "$GATE" id "$gate"
  run "id-full ($backend)" "$GATE" id-full "$gate"
  # Latency alone: one connection.
  CONNS=1 run "id, 1 conn ($backend)" "$GATE" id "$gate"
  CONNS=1 run "id-full, 1 conn" "$GATE" id-full "$gate"
  python3 - "$url" "$GATE" <<'PY'
# A write seen: another connection moves u0 out of p1's editors and back, 50 times; after each
# commit, (a) questions without a token until the answer changes, (b) one question with the
# position after the commit. Times from the commit's return, in ms.
import json, sqlite3, sys, time, urllib.request, subprocess
url, gate = sys.argv[1], sys.argv[2]
def ask(token=None):
    q = {"principal": 'User::"u0"', "action": "edit", "resource": 'Project::"p1"'}
    if token is not None:
        q["consistency"] = {"at_least": token}
    r = urllib.request.urlopen(urllib.request.Request(f"http://{gate}/v1/is_authorized",
        data=json.dumps(q).encode(), headers={"Content-Type": "application/json"}))
    return json.load(r)["decision"]
if url.startswith("sqlite"):
    db = sqlite3.connect(url.split("://", 1)[1], isolation_level=None)
    def write(editor):
        if editor:
            db.execute("INSERT INTO user_groups (user_id, group_id) VALUES ('u0', 'p1.editors')")
        else:
            db.execute("DELETE FROM user_groups WHERE user_id = 'u0' AND group_id = 'p1.editors'")
        return str(db.execute("SELECT MAX(seq) FROM gatehouse_changes").fetchone()[0])
else:
    def write(editor):
        sql = ("INSERT INTO user_groups (user_id, group_id) VALUES ('u0', 'p1.editors');" if editor
               else "DELETE FROM user_groups WHERE user_id = 'u0' AND group_id = 'p1.editors';")
        # Committed as hosts commit by default (the test cluster's own default is off: a
        # commit is decoded once the WAL writer flushes it, up to wal_writer_delay later).
        out = subprocess.run(["psql", url, "-qAtc", "SET synchronous_commit = on; " + sql
                              + " SELECT pg_current_wal_insert_lsn();"],
                             capture_output=True, text=True, check=True).stdout.split()
        return out[-1]
seen, waited, editor = [], [], True
for i in range(50):
    editor = not editor
    want = "Allow" if editor else "Deny"
    token = write(editor)
    t0 = time.perf_counter()
    while ask() != want:
        pass
    seen.append((time.perf_counter() - t0) * 1000)
    editor = not editor
    want = "Allow" if editor else "Deny"
    token = write(editor)
    t0 = time.perf_counter()
    assert ask(token) == want
    waited.append((time.perf_counter() - t0) * 1000)
pct = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(len(xs) * p))]
print(f"write seen, no token       p50 {pct(seen, .5):6.2f} ms   p99 {pct(seen, .99):6.2f} ms  (50 writes)")
print(f"write, then its token      p50 {pct(waited, .5):6.2f} ms   p99 {pct(waited, .99):6.2f} ms")
PY
  kill "$gate"
  while kill -0 "$gate" 2>/dev/null; do sleep 0.1; done
done
