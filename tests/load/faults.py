#!/usr/bin/env python3
"""Load and fault checks against a quickstart binary, with the figures printed.

Usage: faults.py QUICKSTART_BIN WORK_DIR

Starts its own SMTP sink (a small one in this file: it can deliver, or
accept connections and never answer) and quickstart processes on SQLite
files under WORK_DIR, then measures:

  1. N concurrent uses of one reset link        -> exactly one 200
  2. concurrent case-variant sign-ups            -> exactly one account
  3. SMTP down, then back up                     -> the mail arrives
  4. SMTP black-holed                            -> requests return promptly
  5. the database locked by another process      -> reads go on, writes 503
  6. throttling (FS_LOCKOUT_ATTEMPTS=5)          -> 429 + Retry-After, any address
  7. generic-responses timing of /reset and /register, known vs unknown

Exits non-zero when a correctness check fails; timings are reported, not
asserted (they depend on the machine). Standard library only.
"""
import json
import os
import re
import socket
import socketserver
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

FAILURES = []
ROWS = []


def check(name, ok, figure):
    ROWS.append((name, "ok" if ok else "FAIL", figure))
    if not ok:
        FAILURES.append(name)


# --- a small SMTP sink ------------------------------------------------------
class Sink:
    """Plain SMTP on 127.0.0.1:port; `mode` is "deliver" or "hang"."""

    def __init__(self, port=0, mode="deliver"):
        self.mails = []
        self.lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                if sink.mode == "hang":
                    time.sleep(3600)
                    return
                w = self.wfile
                w.write(b"220 sink ready\r\n")
                rcpt, data = [], None
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode("latin-1").strip()
                    up = cmd.upper()
                    if up.startswith(("EHLO", "HELO")):
                        w.write(b"250 sink\r\n")
                    elif up.startswith("MAIL"):
                        rcpt = []
                        w.write(b"250 ok\r\n")
                    elif up.startswith("RCPT"):
                        rcpt.append(cmd.split(":", 1)[1].strip().strip("<>"))
                        w.write(b"250 ok\r\n")
                    elif up == "DATA":
                        w.write(b"354 go on\r\n")
                        data = []
                        while True:
                            l = self.rfile.readline()
                            if l in (b".\r\n", b".\n", b""):
                                break
                            data.append(l)
                        with sink.lock:
                            sink.mails.append((rcpt, b"".join(data).decode("utf-8", "replace")))
                        w.write(b"250 queued\r\n")
                    elif up == "QUIT":
                        w.write(b"221 bye\r\n")
                        return
                    else:
                        w.write(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.mode = mode
        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, to, timeout=15.0):
        """The newest mail to `to` (decoded body), waiting up to `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                for rcpt, body in reversed(self.mails):
                    if to.lower() in (r.lower() for r in rcpt):
                        return body
            time.sleep(0.05)
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def unfold(body):
    """A mail body with quoted-printable soft breaks and escapes undone."""
    body = body.replace("=\r\n", "").replace("=\n", "")
    return re.sub(r"=([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), body)


# --- HTTP -------------------------------------------------------------------
def call(base, method, path, body=None, headers=None, timeout=60):
    h = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    req = urllib.request.Request(base + path, data=data, headers=h, method=method)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    took = time.monotonic() - t0
    try:
        parsed = json.loads(raw or b"null")
    except ValueError:
        parsed = None
    return status, parsed, hdrs, took


def concurrently(fns):
    out = [None] * len(fns)
    gate = threading.Barrier(len(fns))

    def run(i):
        gate.wait()
        out[i] = fns[i]()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


class App:
    def __init__(self, binary, work, name, smtp_port, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = os.path.join(work, f"{name}.db")
        e = dict(os.environ)
        e.update(
            ROCKET_ADDRESS="127.0.0.1",
            ROCKET_PORT=str(self.port),
            ROCKET_CLI_COLORS="false",
            DATABASE_URL=self.db,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            TRUSTED_HOSTS=f"127.0.0.1:{self.port}",
            # Quick retries, so an outage that ends shows within the run.
            ROCKET_SECURITY="{mail_retry_delay=1,mail_send_timeout=2}",
        )
        e.update(env or {})
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        self.proc = subprocess.Popen([binary], env=e, stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if call(self.base, "GET", "/login", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start (see {self.log.name})")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def login_token(self, email, password):
        s, b, _, _ = call(self.base, "POST", "/login?include_auth_token", {"email": email, "password": password})
        assert s == 200, (s, b)
        return b["response"]["user"]["authentication_token"]


PW = "fault-pass-1"


def register(app, email, password=PW):
    return call(app.base, "POST", "/register", {"email": email, "password": password, "password_confirm": password})


def confirm(app, sink, email):
    body = sink.wait_for(email)
    m = re.search(r"/confirm/([A-Za-z0-9_.\-]+)", unfold(body or ""))
    assert m, f"no confirmation link to {email}"
    call(app.base, "GET", f"/confirm/{m.group(1)}")


# --- the checks -------------------------------------------------------------
def reset_link_race(app, sink, n=20):
    email = f"race-{os.getpid()}@example.com"
    assert register(app, email)[0] == 200
    confirm(app, sink, email)
    with sink.lock:
        sink.mails.clear()
    assert call(app.base, "POST", "/reset", {"email": email})[0] == 200
    body = unfold(sink.wait_for(email) or "")
    token = re.search(r"/reset/([A-Za-z0-9_.\-]+)", body).group(1)
    results = concurrently([
        (lambda i=i: call(app.base, "POST", f"/reset/{token}", {"password": f"new-pass-{i}", "password_confirm": f"new-pass-{i}"})[0])
        for i in range(n)
    ])
    ok = results.count(200)
    check(f"{n} concurrent uses of one reset link", ok == 1 and all(s in (200, 400) for s in results),
          f"{ok} x 200, {results.count(400)} x 400, others {[s for s in results if s not in (200, 400)]}")


def case_variant_signups(app, n=50):
    base = f"variant-{os.getpid()}@example.com"
    variants = []
    for mask in range(n):
        variants.append("".join(c.upper() if i < 16 and mask >> i & 1 else c for i, c in enumerate(base)))
    results = concurrently([(lambda v=v: register(app, v)[0]) for v in variants])
    con = sqlite3.connect(app.db, timeout=30)
    rows = con.execute("SELECT count(*) FROM user WHERE lower(email) = ?", (base,)).fetchone()[0]
    con.close()
    others = sorted(set(s for s in results if s not in (200, 400)))
    check(f"{n} concurrent case-variant sign-ups", results.count(200) == 1 and rows == 1 and not others,
          f"{results.count(200)} x 200, {results.count(400)} x 400, others {others}, {rows} row(s)")


def smtp_down_then_up(binary, work):
    port = free_port()  # nothing listens yet
    app = App(binary, work, "smtp-down", port)
    try:
        email = f"outage-{os.getpid()}@example.com"
        s, _, _, took = register(app, email)
        time.sleep(1.5)
        sink = Sink(port)
        t0 = time.monotonic()
        body = sink.wait_for(email, timeout=30)
        after = time.monotonic() - t0
        sink.stop()
        check("SMTP down, then back up", s == 200 and body is not None,
              f"register {s} in {took * 1000:.0f} ms; mail arrived {after:.1f} s after SMTP came back")
    finally:
        app.stop()


def smtp_black_holed(binary, work):
    hole = Sink(mode="hang")
    app = App(binary, work, "smtp-hole", hole.port)
    try:
        times = []
        statuses = []
        for i in range(10):
            s, _, _, took = call(app.base, "POST", "/reset", {"email": "user@example.com"})
            statuses.append(s)
            times.append(took)
        s, _, _, took = register(app, f"hole-{os.getpid()}@example.com")
        statuses.append(s)
        times.append(took)
        worst = max(times)
        check("SMTP black-holed: requests return promptly", all(x == 200 for x in statuses) and worst < 2.0,
              f"11 requests, slowest {worst * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms")
    finally:
        app.stop()
        hole.stop()


def database_locked(app):
    """Another process holds SQLite's write lock: reads go on (WAL), writes
    wait the busy timeout and then answer 503, never 401 or 400."""
    token = app.login_token("user@example.com", "user123")
    con = sqlite3.connect(app.db, timeout=30, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE user SET login_count = login_count WHERE id < 0")
    try:
        read = call(app.base, "GET", "/api/protected", headers={"X-Auth-Token": token})
        write = register(app, f"locked-{os.getpid()}@example.com")
        login = call(app.base, "POST", "/login", {"email": "user@example.com", "password": "user123"})
    finally:
        con.execute("COMMIT")
        con.close()
    after = register(app, f"locked-{os.getpid()}@example.com")[0]
    check("database locked: reads go on, writes 503 (not 401/400)",
          read[0] == 200 and write[0] == 503 and login[0] == 503 and write[2].get("Retry-After")
          and after == 200,
          f"token GET {read[0]} in {read[3] * 1000:.0f} ms; register {write[0]} and login {login[0]} "
          f"after {write[3]:.1f} s (Retry-After {write[2].get('Retry-After')}); register {after} once released")


def throttling(app):
    email = f"throttle-{os.getpid()}@example.com"
    assert register(app, email)[0] == 200
    statuses = []
    for i in range(5):
        statuses.append(call(app.base, "POST", "/login", {"email": email, "password": "wrong-pass"},
                             headers={"X-Real-IP": f"10.0.0.{i + 1}"})[0])
    s, b, h, _ = call(app.base, "POST", "/login", {"email": email, "password": PW},
                      headers={"X-Real-IP": "10.9.9.9"})
    check("throttling after 5 failures (FS_LOCKOUT_ATTEMPTS=5)",
          statuses == [400] * 5 and s == 429 and h.get("Retry-After"),
          f"failures {statuses}, then {s} with Retry-After {h.get('Retry-After')} s from another address "
          f"(right password): {(b or {}).get('response', {}).get('errors')}")


def generic_timing(binary, work, sink):
    app = App(binary, work, "generic", sink.port, {"FS_GENERIC_RESPONSES": "1"})
    try:
        def medians_ms(fa, fb, n):
            """Medians of `fa` and `fb`, measured alternately (drift cancels)."""
            fa(), fb()  # warm up
            a, b = [], []
            for _ in range(n):
                a.append(fa())
                b.append(fb())
            return statistics.median(a) * 1000, statistics.median(b) * 1000

        reset_known, reset_unknown = medians_ms(
            lambda: call(app.base, "POST", "/reset", {"email": "user@example.com"})[3],
            lambda: call(app.base, "POST", "/reset", {"email": "nobody@example.com"})[3],
            21,
        )
        counter = iter(range(10**6))
        reg_existing, reg_new = medians_ms(
            lambda: register(app, "user@example.com")[3],
            lambda: register(app, f"new-{os.getpid()}-{next(counter)}@example.com")[3],
            11,
        )
        ROWS.append(("generic mode: /reset known vs unknown", "info",
                     f"{reset_known:.1f} ms vs {reset_unknown:.1f} ms (difference {reset_known - reset_unknown:+.1f} ms)"))
        ROWS.append(("generic mode: /register existing vs new", "info",
                     f"{reg_existing:.1f} ms vs {reg_new:.1f} ms (difference {reg_existing - reg_new:+.1f} ms)"))
    finally:
        app.stop()


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    sink = Sink()
    main_app = App(binary, work, "faults", sink.port, {"FS_LOCKOUT_ATTEMPTS": "5"})
    try:
        reset_link_race(main_app, sink)
        case_variant_signups(main_app)
        throttling(main_app)
        database_locked(main_app)
    finally:
        main_app.stop()
    smtp_down_then_up(binary, work)
    smtp_black_holed(binary, work)
    generic_timing(binary, work, sink)
    sink.stop()
    width = max(len(r[0]) for r in ROWS)
    print()
    for name, verdict, figure in ROWS:
        print(f"{name:<{width}}  {verdict:<4}  {figure}")
    if FAILURES:
        print(f"\nFAILED: {', '.join(FAILURES)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
