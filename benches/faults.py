#!/usr/bin/env python3
"""The figures of issue 23 (BENCHMARKS.md, "Faults"), measured against a release build of
`gatehouse serve` on loopback, with the standard library only:

    cargo build --release --bin gatehouse
    python3 benches/faults.py reload      # a saved change to live: ungated, each gate, both
    python3 benches/faults.py flood       # RSS under 400 distinct questions with a 900 KB id
    python3 benches/faults.py shutdown    # SIGTERM to exit with 2 000 idle connections open
    python3 benches/faults.py probes      # /healthz latency while heavy questions run

Each starts its own sidecar on a scratch copy of the bundled policies and prints one line per
figure. GATEHOUSE_BIN names another binary (an older build, for an A/B).
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "target/release/gatehouse"))


def serve(policies, *extra):
    """Starts the sidecar on a free port; returns the process and its address."""
    env = dict(os.environ, RUST_LOG="warn")
    for var in ("GATEHOUSE_POLICIES", "GATEHOUSE_SCHEMA", "GATEHOUSE_LISTEN"):
        env.pop(var, None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = ("127.0.0.1", port)
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--policies", policies, *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if request(addr, "GET", "/healthz")[0] == 200:
                return proc, addr
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the sidecar did not start")


def request(addr, method, path, body=b""):
    """One request on a connection of its own: the status and the body."""
    with socket.create_connection(addr, timeout=30) as s:
        head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        s.sendall(head.encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head[9:12]), rest


def scratch():
    dir = tempfile.mkdtemp()
    shutil.copytree(os.path.join(ROOT, "policies"), os.path.join(dir, "policies"))
    return dir, os.path.join(dir, "policies")


def version(addr):
    return json.loads(request(addr, "GET", "/v1/status")[1])["policy_version"]


def reload():
    gates = {
        "no gate": [],
        "--require-suites": ["--require-suites", "tests/policies"],
        "--require-properties": ["--require-properties", "tests/properties"],
        "both gates": ["--require-properties", "tests/properties",
                       "--require-suites", "tests/policies"],
    }
    for name, extra in gates.items():
        dir, policies = scratch()
        proc, addr = serve(policies, *extra)
        took = []
        for i in range(5):
            before = version(addr)
            path = os.path.join(policies, "public.cedar")
            with open(path, "a") as f:
                f.write(f"\n// change {i}\n")
            saved = time.monotonic()
            while version(addr) == before:
                time.sleep(0.002)
            took.append((time.monotonic() - saved) * 1000)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(dir)
        print(f"reload, {name}: a saved change live after {statistics.median(took):.0f} ms "
              f"(median of 5; {min(took):.0f}-{max(took):.0f})")


def rss(proc):
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024


def flood():
    for name, extra in {"--cache-bytes 256MiB (the default)": [],
                        "--cache-bytes 64GiB (bounded by count only, as before)":
                            ["--cache-bytes", "64GiB"]}.items():
        dir, policies = scratch()
        proc, addr = serve(policies, "--max-body", "4194304", *extra)
        before = rss(proc)
        started = time.monotonic()
        for i in range(400):
            uid = f"{i:04d}" + "x" * 900_000
            body = json.dumps({"principal": f'User::"{uid}"', "action": "view",
                               "resource": 'Project::"p1"'}).encode()
            status, _ = request(addr, "POST", "/v1/is_authorized", body)
            assert status == 200, status
        after = rss(proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(dir)
        print(f"flood, {name}: RSS {before} MiB before, {after} MiB after 400 questions "
              f"with a 900 KB id ({time.monotonic() - started:.1f} s)")


def shutdown():
    dir, policies = scratch()
    proc, addr = serve(policies)
    idle = [socket.create_connection(addr) for _ in range(2000)]
    half = []
    for _ in range(20):
        s = socket.create_connection(addr)
        s.sendall(b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Le")
        half.append(s)
    time.sleep(0.5)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    took = (time.monotonic() - signalled) * 1000
    for s in idle + half:
        s.close()
    shutil.rmtree(dir)
    print(f"shutdown: SIGTERM to exit with 2000 idle and 20 half-open connections: {took:.0f} ms")


def probes():
    dir, policies = scratch()
    proc, addr = serve(policies, "--max-body", "4194304")
    entities = [{"uid": {"type": "User", "id": f"u{i}"}, "attrs": {},
                 "parents": [{"type": "Group", "id": "p1.viewers"}]} for i in range(8000)]

    def probe(n):
        took = []
        for _ in range(n):
            started = time.monotonic()
            status, _ = request(addr, "GET", "/healthz")
            assert status == 200
            took.append((time.monotonic() - started) * 1000)
            time.sleep(0.01)
        took.sort()
        return took[len(took) // 2], took[int(len(took) * 0.99) - 1], took[-1]

    idle = probe(200)
    stop = threading.Event()

    # Written once: the client's own work must not be what the probes wait for.
    template = json.dumps({"principal": 'User::"h@N@"', "action": "view",
                           "resource": 'Project::"p1"', "entities": entities}).encode()

    def heavy(k):
        n = 0
        while not stop.is_set():
            n += 1
            body = template.replace(b"@N@", f"{k}-{n}".encode())
            request(addr, "POST", "/v1/is_authorized", body)

    workers = [threading.Thread(target=heavy, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    time.sleep(1)
    loaded = probe(200)
    stop.set()
    for w in workers:
        w.join()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    shutil.rmtree(dir)
    for name, (p50, p99, worst) in [("idle", idle), ("4 heavy questions in flight", loaded)]:
        print(f"probes, {name}: /healthz p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    runs = {"reload": reload, "flood": flood, "shutdown": shutdown, "probes": probes}
    if what not in runs:
        raise SystemExit(__doc__)
    runs[what]()
