#!/usr/bin/env python3
"""Peak memory of a quickstart process under a burst of real-hash logins.

Usage: hash_burst.py BASE_URL PID [CONCURRENCY] [LIMIT_MIB] [RAW [MIN_RATIO]]

Fires CONCURRENCY (default 64) simultaneous `POST /login` requests with a
right password (full-cost argon2 on the server), then reads the server's peak
resident set (VmHWM of /proc/PID/status). Prints the figures; exits non-zero
when a request got anything but 200/503 or the peak exceeds LIMIT_MIB.

RAW is the baseline login throughput is held to: raw argon2id with the
same parameters on all cores. Either a rate (hashes per second), compared
with 15 s of logins with 2 x cores in flight; or the path of the
`argon2_rate` binary, which is then run in 5 s windows taking turns with 5 s
windows of logins (raw, logins, raw, ..., logins, raw; five login windows): each login
window is compared with the mean of the raw windows either side, and the
median of the five shares is what counts. On a shared machine whose speed
drifts by 10-20% within a minute, a baseline measured once, before, can be
off by more than the 5% the check allows; neighbouring windows see the
same machine. Below MIN_RATIO (default 0.95) fails. Standard library only.
"""
import json
import os
import statistics
import subprocess
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
        min_ratio = float(sys.argv[6]) if len(sys.argv) > 6 else 0.95
        workers = 2 * (os.cpu_count() or 1)
        if os.path.exists(sys.argv[5]):
            ratio, codes = taking_turns(base, sys.argv[5], workers, min_ratio)
        else:
            raw = float(sys.argv[5])
            rate, codes = sustained(base, workers, 15.0)
            ratio = rate / raw
            print(
                f"login throughput: {rate:.2f} logins/s vs raw argon2id {raw:.2f} hashes/s: "
                f"{ratio * 100:.1f}% (goal {min_ratio * 100:.0f}%); statuses {codes}"
            )
        failed = failed or ratio < min_ratio or set(codes) - {200}
    if failed:
        sys.exit(1)


def raw_rate(binary, secs):
    """Raw argon2id hashes per second on every core, from `argon2_rate`."""
    cores = str(os.cpu_count() or 1)
    out = subprocess.run(
        [binary, cores, str(secs)], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("hashes_per_second="):
            return float(line.split("=", 1)[1])
    sys.exit(f"no hashes_per_second in the output of {binary}: {out!r}")


def taking_turns(base, binary, workers, min_ratio, rounds=5, secs=5):
    """The median share of raw argon2id that login windows reach, each
    against the mean of the raw windows either side; and the statuses."""
    raws = [raw_rate(binary, secs)]
    rates, codes = [], {}
    for _ in range(rounds):
        rate, c = sustained(base, workers, float(secs))
        rates.append(rate)
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
        raws.append(raw_rate(binary, secs))
    shares = [rate / ((a + b) / 2) for rate, a, b in zip(rates, raws, raws[1:])]
    ratio = statistics.median(shares)
    print(
        "login throughput, taking turns with raw argon2id in "
        f"{secs} s windows: raw {', '.join(f'{r:.2f}' for r in raws)} hashes/s; "
        f"logins {', '.join(f'{r:.2f}' for r in rates)}/s; shares "
        f"{', '.join(f'{x * 100:.1f}%' for x in shares)}; median {ratio * 100:.1f}% "
        f"(goal {min_ratio * 100:.0f}%); statuses {codes}"
    )
    return ratio, codes


def sustained(base, workers, secs):
    """Logins per second with `workers` always in flight for `secs`.

    Counted as `argon2_rate` counts hashes: every login started before the
    deadline, over the time until the last of them is answered. Counting
    only the answers within the window would drop the work in flight at
    its end, which at 0.2 s a hash and two cores is up to 4% of a 5 s
    window, and in steps (25 or 26 hashes a core) that make the share jump.
    """
    deadline = time.monotonic() + secs
    counts = {}
    lock = threading.Lock()

    def worker():
        while time.monotonic() < deadline:
            slot = [None]
            login(base, slot, 0)
            status = slot[0][0]
            with lock:
                counts[status] = counts.get(status, 0) + 1

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts.get(200, 0) / (time.monotonic() - t0), counts


if __name__ == "__main__":
    main()
