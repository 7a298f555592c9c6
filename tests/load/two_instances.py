#!/usr/bin/env python3
"""Two quickstart processes on one PostgreSQL database: what one writes,
the other's identity cache hears of.

Usage: two_instances.py QUICKSTART_BIN POSTGRES_URL WORK_DIR

POSTGRES_URL names an empty database; `psql` must be on PATH (it plays the
administrator writing SQL beside the apps). Checks, each with the time it
took the other instance to notice:

  1. a password change through instance A ends the old token on instance B
  2. an UPDATE in SQL (deactivation) is seen by A and by B
  3. after the LISTEN connections are cut, a change made meanwhile is seen
     (the cache is flushed on reconnect), and later changes are heard again
  4. a two-factor sign-in started on A (password) is finished on B
     (/tf-validate with A's session cookie), and only once

Exits non-zero when a check fails. Standard library only.
"""
import base64
import hashlib
import hmac
import http.cookiejar
import json
import os
import struct
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

EMAIL, PASSWORD, NEW_PASSWORD = "user@example.com", "user123", "another-pass-9"
BOUND = 3.0  # seconds another instance may take to notice
FAILURES = []
ROWS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, token=None):
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["X-Auth-Token"] = token
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {}


def start(binary, url, port, work, name):
    env = dict(
        os.environ,
        DATABASE_URL=url,
        ROCKET_PORT=str(port),
        ROCKET_ADDRESS="127.0.0.1",
        ROCKET_LOG_LEVEL="critical",
        FS_FAST_HASH="1",
    )
    log = open(os.path.join(work, f"two-{name}.log"), "w")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"instance {name} exited (see {log.name})")
        try:
            request(port, "GET", "/login")
            return proc
        except OSError:
            time.sleep(0.1)
    sys.exit(f"instance {name} did not start")


class Browser:
    """A cookie jar and the latest csrf_token, across both instances (the
    cookies of 127.0.0.1 go to every port)."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = None

    def call(self, port, method, path, body=None):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.csrf:
            headers["X-XSRF-Token"] = self.csrf
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            resp = json.loads(raw or b"{}").get("response", {})
        except ValueError:
            resp = {}
        if isinstance(resp, dict) and resp.get("csrf_token"):
            self.csrf = resp["csrf_token"]
        return status, resp


def totp(b32, t):
    key = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    h = hmac.new(key, struct.pack(">Q", int(t) // 30), hashlib.sha1).digest()
    off = h[-1] & 0x0F
    return f"{(struct.unpack('>I', h[off:off + 4])[0] & 0x7FFFFFFF) % 1000000:06d}"


def two_factor_across(pa, pb):
    """4: the authenticator set up on A; a sign-in begun on A ends on B."""
    email, password = "admin@example.com", "admin123"
    setup = Browser()
    s, r = setup.call(pa, "POST", "/login", {"email": email, "password": password})
    if s != 200 or r.get("tf_required") is not False:
        sys.exit(f"admin login on A answered {s}: {r}")
    s, r = setup.call(pa, "POST", "/tf-setup", {"setup": "authenticator"})
    if s != 200:
        sys.exit(f"/tf-setup on A answered {s}: {r}")
    key, state = r["tf_authr_b32key"], r["tf_state_token"]
    s, r = setup.call(pa, "POST", f"/tf-setup/{state}", {"code": totp(key, time.time())})
    if s != 200:
        sys.exit(f"/tf-setup/<state> on A answered {s}: {r}")
    browser = Browser()
    t0 = time.time()
    s, r = browser.call(pa, "POST", "/login", {"email": email, "password": password})
    if s != 200 or r.get("tf_required") is not True:
        sys.exit(f"two-factor login on A answered {s}: {r}")
    replay = Browser()
    for c in browser.jar:
        replay.jar.set_cookie(c)
    s, r = browser.call(pb, "POST", "/tf-validate", {"code": totp(key, time.time())})
    home = browser.call(pb, "GET", "/api/data")[0]
    name = "two-factor begun on A, code validated on B"
    if s == 200 and home == 200:
        ROWS.append((name, "ok", f"{(time.time() - t0) * 1000:.1f} ms"))
    else:
        ROWS.append((name, "FAIL", f"/tf-validate {s} {r}, then /api/data {home}"))
        FAILURES.append(name)
    # The waiting sign-in was consumed: A's copy of the cookie is worth nothing.
    s, r = replay.call(pa, "POST", "/tf-validate", {"code": totp(key, time.time() + 30)})
    name = "the same waiting sign-in replayed on A"
    denied = ["You currently do not have permissions to access this page"]
    if s == 400 and r.get("errors") == denied:
        ROWS.append((name, "ok", "refused"))
    else:
        ROWS.append((name, "FAIL", f"{s} {r}"))
        FAILURES.append(name)


def psql(url, sql):
    subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def token_on(port, password):
    s, b = request(port, "POST", "/login?include_auth_token",
                   {"email": EMAIL, "password": password})
    if s != 200:
        sys.exit(f"login on :{port} answered {s}: {b}")
    return b["response"]["user"]["authentication_token"]


def status(port, token):
    return request(port, "GET", "/api/protected", token=token)[0]


def noticed(name, port, token, want):
    """Polls until /api/protected answers `want`; records the delay."""
    t0 = time.time()
    while time.time() - t0 < BOUND:
        if status(port, token) == want:
            took = time.time() - t0
            ROWS.append((name, "ok", f"{took * 1000:.1f} ms"))
            return
        time.sleep(0.005)
    ROWS.append((name, "FAIL", f"still not {want} after {BOUND} s"))
    FAILURES.append(name)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, url, work = sys.argv[1:]
    pa, pb = free_port(), free_port()
    a = start(binary, url, pa, work, "A")
    b = start(binary, url, pb, work, "B")
    try:
        token = token_on(pb, PASSWORD)
        for port in (pa, pb, pb):
            if status(port, token) != 200:
                sys.exit(f"the fresh token is refused on :{port}")
        # 1. A password change through A (it rotates fs_uniquifier).
        s, body = request(pa, "POST", "/change?include_auth_token",
                          {"password": PASSWORD, "new_password": NEW_PASSWORD,
                           "new_password_confirm": NEW_PASSWORD}, token=token)
        if s != 200:
            sys.exit(f"/change on A answered {s}: {body}")
        noticed("password change on A ends the token on B", pb, token, 401)
        token = body["response"]["user"]["authentication_token"]
        for port in (pa, pb, pb):
            if status(port, token) != 200:
                sys.exit(f"the new token is refused on :{port}")
        # 2. An administrator's SQL.
        psql(url, f"UPDATE \"user\" SET active = false WHERE email = '{EMAIL}'")
        noticed("UPDATE in SQL, seen by A", pa, token, 401)
        noticed("UPDATE in SQL, seen by B", pb, token, 401)
        # 3. The LISTEN connections are cut; a change lands meanwhile.
        psql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
        psql(url, f"UPDATE \"user\" SET active = true WHERE email = '{EMAIL}'")
        noticed("change while not listening, seen by B", pb, token, 200)
        status(pb, token)  # cached again
        psql(url, f"UPDATE \"user\" SET active = false WHERE email = '{EMAIL}'")
        noticed("listening again after the cut, B", pb, token, 401)
        # 4. Two-factor across instances.
        two_factor_across(pa, pb)
    finally:
        for p in (a, b):
            p.terminate()
        for p in (a, b):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print("| check | result | took |")
    print("|---|---|---|")
    for name, res, fig in ROWS:
        print(f"| {name} | {res} | {fig} |")
    if FAILURES:
        sys.exit("failed: " + ", ".join(FAILURES))


if __name__ == "__main__":
    main()
