#!/usr/bin/env python3
"""Helpers of bench/http.sh (standard library only).

  http_helper.py free-port
      prints a free TCP port on 127.0.0.1
  http_helper.py login BASE_URL EMAIL PASSWORD
      JSON login with ?include_auth_token; prints two lines: the auth token
      and the `session=...` cookie pair
  http_helper.py requests-per-sec WRK_OUTPUT_FILE
      the Requests/sec figure of one wrk run
  http_helper.py table RESULTS_FILE
      RESULTS_FILE has lines `case<TAB>side<TAB>req_per_sec`; prints the
      markdown table of the medians (request | bare | quickstart | share of
      the medians | median of the rounds' shares), then every round's figure
      when there was more than one. Each round runs bare and then the
      quickstart back to back, so a round's share compares two runs seconds
      apart: its median is the steadier figure on a noisy machine
"""
import http.client
import json
import re
import socket
import statistics
import sys
import urllib.parse

CASES = [
    ("token", "token `GET /api/protected`"),
    ("session", "session `GET /api/data`"),
    ("login", "anonymous `GET /login` (JSON)"),
    ("login_headers", "anonymous `GET /login` (JSON), bare with the same headers (`/login-headers`)"),
    ("unauth", "no credentials `GET /api/protected`, 401 (bare: `/unauth`)"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def login(base, email, password):
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = json.dumps({"email": email, "password": password})
    conn.request(
        "POST",
        "/login?include_auth_token",
        body=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        sys.exit(f"login as {email}: HTTP {resp.status}: {data[:300]!r}")
    try:
        token = json.loads(data)["response"]["user"]["authentication_token"]
    except (ValueError, KeyError, TypeError):
        sys.exit(f"login as {email}: no response.user.authentication_token in {data[:300]!r}")
    session = None
    for name, value in resp.getheaders():
        if name.lower() == "set-cookie" and value.startswith("session="):
            session = value.split(";", 1)[0]
    if not session:
        sys.exit(f"login as {email}: no session cookie in the answer")
    print(token)
    print(session)


def requests_per_sec(path):
    with open(path) as f:
        m = re.search(r"^Requests/sec:\s*([0-9.]+)", f.read(), re.M)
    if not m:
        sys.exit(f"no Requests/sec in {path}")
    print(m.group(1))


def table(path):
    runs = {}
    with open(path) as f:
        for line in f:
            case, side, rate = line.split("\t")
            runs.setdefault((case, side), []).append(float(rate))
    print("| request | bare req/s | quickstart req/s | share of bare (%) | median share of a round (%) |")
    print("|---|---:|---:|---:|---:|")
    for key, label in CASES:
        bare = runs.get((key, "bare"))
        qs = runs.get((key, "quickstart"))
        if not bare or not qs:
            continue
        b, q = statistics.median(bare), statistics.median(qs)
        share = 100.0 * q / b if b else 0.0
        paired = statistics.median(100.0 * y / x for x, y in zip(bare, qs) if x)
        print(f"| {label} | {b:,.0f} | {q:,.0f} | {share:.1f} | {paired:.1f} |")
    if any(len(v) > 1 for v in runs.values()):
        print()
        print("Every round (req/s, bare / quickstart):")
        print()
        for key, label in CASES:
            bare, qs = runs.get((key, "bare"), []), runs.get((key, "quickstart"), [])
            fmt = lambda v: ", ".join(f"{x:,.0f}" for x in v)
            print(f"- {label}: {fmt(bare)} / {fmt(qs)}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"free-port": free_port, "login": login, "requests-per-sec": requests_per_sec, "table": table}[
        cmd
    ](*args)


if __name__ == "__main__":
    main()
