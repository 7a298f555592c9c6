#!/usr/bin/env python3
"""Recovery codes Flask-Security made, after a takeover: each works once.

Usage: takeover_mfa.py BASE_URL FIXTURE_JSON CONFORMANCE_DIR

Run by .ci/run's takeover stage after the conformance takeover tests, on the
same target (a quickstart on the fixture's database, started with its
takeover.env). For each two-factor user of the fixture: sign in with the
password, spend the first recovery code Flask-Security generated (200, signed
in), then sign in again in a new client and try the same code (400, "Recovery
code invalid"), then the second code (200). Exits non-zero on any mismatch.
"""
import json
import sys


def main():
    base, fixture, conf = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.path.insert(0, f"{conf}/tests")
    from fsclient import SpaClient, body  # noqa: E402  (the suite's client)

    fx = json.load(open(fixture, encoding="utf-8"))
    failures = []
    checked = 0
    for key, u in fx["users"].items():
        codes = u.get("recovery_codes") or []
        if len(codes) < 2:
            continue
        checked += 1

        def attempt(code):
            c = SpaClient(base)
            r = c.post("/login", json={"email": u["email"], "password": u["password"]})
            if r.status_code != 200 or body(r).get("tf_required") is not True:
                return f"login: {r.status_code} {r.text}", None
            r = c.post("/mf-recovery", json={"code": code})
            home = c.get("/").status_code
            return r, home

        r, home = attempt(codes[0])
        if isinstance(r, str) or r.status_code != 200 or home != 200:
            failures.append(f"{key}: first use of a recovery code: {getattr(r, 'text', r)} (home {home})")
            continue
        r, home = attempt(codes[0])
        errs = body(r).get("field_errors") if not isinstance(r, str) else None
        if isinstance(r, str) or r.status_code != 400 or errs != {"code": ["Recovery code invalid"]} or home != 401:
            failures.append(f"{key}: a used recovery code again: {getattr(r, 'text', r)} (home {home})")
        r, home = attempt(codes[1])
        if isinstance(r, str) or r.status_code != 200 or home != 200:
            failures.append(f"{key}: the next recovery code: {getattr(r, 'text', r)} (home {home})")
    if checked == 0:
        failures.append("the fixture has no user with recovery codes")
    for f in failures:
        print("FAIL", f)
    print(f"takeover recovery codes: {checked} users checked, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
