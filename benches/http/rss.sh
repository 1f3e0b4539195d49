#!/usr/bin/env bash
# Memory with a large entity database (issue 25), in one command: bash benches/http/rss.sh [QUESTIONS]
#
# Writes 1 000 000 entities into a SQLite entity database (the bundled tables): 1 000
# organizations, 100 000 projects (each of an organization) and 899 000 users (each an editor
# of one project and a member of its organization), in SQL, through gatehouse's own triggers.
# Starts gatehouse on it (release build, the default `--entities-cache` of 100 000 entities)
# and asks QUESTIONS (default 200 000) distinct questions by id, on 8 connections: user u{i}
# edits project p{i mod 100 000}, so that the entity cache fills to its capacity and evicts.
# Prints gatehouse's RSS (VmRSS, VmHWM) before and after, the entities cached and the cache
# counters from /metrics, and the decisions (every question must be allowed).
set -euo pipefail
cd "$(dirname "$0")/../.."
QUESTIONS=${1:-200000}
GATE=127.0.0.1:18191
cargo build --release --quiet --bin gatehouse
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
db="sqlite://$dir/entities.db"
# The tables and their triggers, from an empty import.
echo '[]' > "$dir/empty.json"
./target/release/gatehouse entities import --entities-db "$db" "$dir/empty.json" >/dev/null
python3 - "$dir/entities.db" <<'PY'
import sqlite3, sys, time
t = time.time()
db = sqlite3.connect(sys.argv[1])
orgs = [(f"o{i}", f"o{i}.admins", f"o{i}.data_owners", f"o{i}.editors", f"o{i}.viewers", f"o{i}.members")
        for i in range(1000)]
db.executemany("INSERT INTO organizations VALUES (?, ?, ?, ?, ?, ?)", orgs)
projects = ((f"p{i}", f"u{i}", f"o{i % 1000}", f"p{i}.admins", f"p{i}.managers", f"p{i}.editors",
             f"p{i}.viewers", "processing", 0, 0, 0, 0) for i in range(100_000))
db.executemany("INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", projects)
db.executemany("INSERT INTO users VALUES (?, ?)", ((f"u{i}", f"u{i}@example.com") for i in range(899_000)))
groups = ((f"u{i}", g) for i in range(899_000)
          for g in (f"p{i % 100_000}.editors", f"o{i % 100_000 % 1000}.members"))
db.executemany("INSERT INTO user_groups VALUES (?, ?)", groups)
db.commit()
n = sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ["organizations", "projects", "users"])
print(f"{n} entities written in {time.time() - t:.0f} s", file=sys.stderr)
PY
./target/release/gatehouse serve --listen "$GATE" --entities-db "$db" >"$dir/serve.out" 2>"$dir/serve.log" &
pid=$!
until curl -s -o /dev/null "http://$GATE/readyz"; do sleep 0.2; done
rss() { awk '/^VmRSS|^VmHWM/ { printf "%s %.1f MiB  ", $1, $2 / 1024 } END { print "" }' "/proc/$pid/status"; }
echo "started:  $(rss)"
python3 - "$GATE" "$QUESTIONS" <<'PY'
import http.client, json, sys, threading, time
host, questions = sys.argv[1], int(sys.argv[2])
allowed, failed, lock = [0], [], threading.Lock()
def ask(start):
    conn = http.client.HTTPConnection(host)
    for i in range(start, questions, 8):
        body = json.dumps({"principal": f'User::"u{i}"', "action": "edit",
                           "resource": f'Project::"p{i % 100_000}"'})
        conn.request("POST", "/v1/is_authorized", body, {"content-type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        with lock:
            if answer.get("decision") == "Allow":
                allowed[0] += 1
            elif len(failed) < 3:
                failed.append(answer)
t = time.time()
threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
for th in threads: th.start()
for th in threads: th.join()
print(f"{questions} questions in {time.time() - t:.0f} s: {allowed[0]} allowed", failed or "", file=sys.stderr)
sys.exit(0 if allowed[0] == questions else 1)
PY
echo "after:    $(rss)"
curl -s "http://$GATE/metrics" | grep -E '^gatehouse_entities_(cached|cache_hits_total|cache_misses_total|reads_total) '
