#!/usr/bin/env python3
"""Peak memory of a quickstart process under a burst of real-hash logins.

Usage: hash_burst.py BASE_URL PID [CONCURRENCY] [LIMIT_MIB] [RAW_RATE [MIN_RATIO]]

Fires CONCURRENCY (default 64) simultaneous `POST /login` requests with a
right password (full-cost argon2 on the server), then reads the server's peak
resident set (VmHWM of /proc/PID/status). Prints the figures; exits non-zero
when a request got anything but 200/503 or the peak exceeds LIMIT_MIB.

With RAW_RATE (argon2id hashes per second with the same parameters on all
cores, from `argon2_rate`), it then keeps 2 x cores logins in flight for 15 s
and compares logins per second with it: below MIN_RATIO (default 0.95) fails.
Standard library only.
"""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def login(base, results, i):
    body = json.dumps({"email": "user@example.com", "password": "user123"}).encode()
    req = urllib.request.Request(
        f"{base}/login", data=body, headers={"Content-Type": "application/json"}
    )
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception as e:  # connection refused, timeout: a failure of the run
        status = f"error {e}"
    results[i] = (status, time.monotonic() - t0)


def main():
    base, pid = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else None
    before = vm_hwm_kib(pid)
    results = [None] * n
    threads = [threading.Thread(target=login, args=(base, results, i)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    peak = vm_hwm_kib(pid)
    ok = sum(1 for s, _ in results if s == 200)
    busy = sum(1 for s, _ in results if s == 503)
    other = [s for s, _ in results if s not in (200, 503)]
    slowest = max(d for _, d in results)
    print(
        f"hash burst: {n} concurrent logins in {wall:.2f}s: {ok} x 200, {busy} x 503, "
        f"other {other}; slowest {slowest:.2f}s; peak RSS {before / 1024:.1f} MiB before, "
        f"{peak / 1024:.1f} MiB after" + (f" (limit {limit:.0f} MiB)" if limit else "")
    )
    failed = bool(other) or (limit is not None and peak / 1024 > limit)
    if len(sys.argv) > 5:
        raw = float(sys.argv[5])
        min_ratio = float(sys.argv[6]) if len(sys.argv) > 6 else 0.95
        rate, codes = sustained(base, 2 * (os.cpu_count() or 1), 15.0)
        ratio = rate / raw
        print(
            f"login throughput: {rate:.2f} logins/s vs raw argon2id {raw:.2f} hashes/s: "
            f"{ratio * 100:.1f}% (goal {min_ratio * 100:.0f}%); statuses {codes}"
        )
        failed = failed or ratio < min_ratio or set(codes) - {200}
    if failed:
        sys.exit(1)


def sustained(base, workers, secs):
    """Logins per second with `workers` always in flight for `secs`."""
    deadline = time.monotonic() + secs
    counts = {}
    lock = threading.Lock()
    done = [0]

    def worker():
        while time.monotonic() < deadline:
            slot = [None]
            login(base, slot, 0)
            status = slot[0][0]
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if status == 200 and time.monotonic() <= deadline:
                    done[0] += 1

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # Completions within the window over its length (a login still in flight
    # at the end is not counted: at most one per worker).
    return done[0] / (deadline - t0), counts


if __name__ == "__main__":
    main()
