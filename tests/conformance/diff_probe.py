#!/usr/bin/env python3
"""Differential wire probe: Flask-Security reference app vs. the Rust port.

Starts nothing.  Runs the same scripted scenarios (plain ``requests``
sessions, redirects never followed) against two running apps and reports, per
step, every difference in what a client can observe on the wire:

  status, Content-Type, JSON envelope keys, meta, ``response`` keys, ``errors``
  (exact text, order), ``field_errors`` (field names + messages), other response
  values (random values masked), plain-text bodies of the app routes, HTML form
  input names, Location (raw, tokens masked, and parsed path + query),
  Set-Cookie (names + HttpOnly/Secure/SameSite/Path/Domain/Max-Age/Expires,
  deletion), Cache-Control directive names, WWW-Authenticate presence, Vary,
  Allow, mails sent (recipient/subject), and a few derived facts
  (``note`` steps, e.g. whether the CSRF token rotated on login).

Masked: CSRF/auth/state tokens (shape only: type), the random part of the
e-mail addresses / usernames generated for this run (the same value is used
against both apps: ``<label>-<12 hex>@example.com``, shown as
``<label>-<R:label>@example.com``), the app's own host:port (``<host>``), and
token-ish query values in Location (token, code, id, auth_token, csrf_token).

The reference app and the target must both be fresh-ish instances of the
conformance contract (seeded users with their seeded passwords, default
SECRET_KEY unless --secret-key is given).  Re-runnable against the same
instances: all created identities are random per run.

Exact commands used to produce DIFF_REPORT.md (from /work/main).  Three scenario
"pairs" (see PAIRS): ``main`` (reference vs target, standard configuration),
``username`` (a private copy of reference_app.py with SECURITY_CHANGE_USERNAME and
SECURITY_USERNAME_RECOVERY added, vs the same target: the quickstart always enables
both) and ``generic`` (both apps started with FS_GENERIC_RESPONSES=1):

    P=/tmp/fs-conformance-venv/bin/python
    C=/work/shared/conformance
    D=/tmp/diffprobe
    rm -rf $D && mkdir -p $D/rust/mail $D/rustgen/mail $D/refuser_conf
    cp target/debug/quickstart $D/quickstart   # private copy: immune to rebuilds mid-run
    # reference with the two username features: a copy of the conformance scripts
    cp $C/run_reference.sh $C/_env.sh $C/smtp_sink.py $C/reference_app.py $C/requirements.txt $D/refuser_conf/
    chmod u+w $D/refuser_conf/*
    sed -i 's/^        SECURITY_CHANGE_EMAIL=True,$/&\n        SECURITY_CHANGE_USERNAME=True,\n        SECURITY_USERNAME_RECOVERY=True,/' \
        $D/refuser_conf/reference_app.py
    $C/run_reference.sh 8330 8331 $D/ref/mail $D/ref/state
    $D/refuser_conf/run_reference.sh 8334 8335 $D/refuser/mail $D/refuser/state
    FS_GENERIC_RESPONSES=1 $C/run_reference.sh 8336 8337 $D/refgen/mail $D/refgen/state
    $P $C/smtp_sink.py --host 127.0.0.1 --port 8333 --dir $D/rust/mail & echo $! > $D/rust/sink.pid
    $P $C/smtp_sink.py --host 127.0.0.1 --port 8339 --dir $D/rustgen/mail & echo $! > $D/rustgen/sink.pid
    ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT=8332 DATABASE_URL=$D/rust/target.db \
      SMTP_HOST=127.0.0.1 SMTP_PORT=8333 FS_FAST_HASH=1 $D/quickstart & echo $! > $D/rust/app.pid
    ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT=8338 DATABASE_URL=$D/rustgen/target.db FS_GENERIC_RESPONSES=1 \
      SMTP_HOST=127.0.0.1 SMTP_PORT=8339 FS_FAST_HASH=1 $D/quickstart & echo $! > $D/rustgen/app.pid
    sleep 3   # until Rocket has launched
    $P tests/conformance/diff_probe.py \
        --ref http://127.0.0.1:8330 --ref-mail $D/ref/mail \
        --target http://127.0.0.1:8332 --target-mail $D/rust/mail \
        --ref-username http://127.0.0.1:8334 --ref-username-mail $D/refuser/mail \
        --ref-generic http://127.0.0.1:8336 --ref-generic-mail $D/refgen/mail \
        --target-generic http://127.0.0.1:8338 --target-generic-mail $D/rustgen/mail \
        --report tests/conformance/DIFF_REPORT.md
    # then stop them, by PID: $D/{ref,refuser,refgen}/state/{app,sink}.pid, $D/{rust,rustgen}/{app,sink}.pid

Scenarios of a pair whose URLs are not given are skipped (listed as such in the report).
The full run takes about 4 minutes (mail waits; reset scenarios sleep 1 s between
token requests because FS tokens have a one-second timestamp).

Re-running overwrites the report with the generated sections only (a hand-written
triage section at its top, if any, is not regenerated).

Options: ``--only a,b`` runs only the named scenarios, ``--list`` lists them,
``--verbose`` prints every step's observations.  Exit status: 0 no
differences, 1 differences, 2 usage/connection error.
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import json
import os
import re
import sys
import time
import traceback
import uuid
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit

import requests

DEFAULT_SECRET_KEY = "conformance-secret-key-not-for-production"

ACCEPT_HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT = {"json": "application/json", "html": ACCEPT_HTML, "any": "*/*", None: None}

USER = ("user@example.com", "user123")
ADMIN = ("admin@example.com", "admin123")
DISABLED = ("disabled@example.com", "disabled123")

# response keys whose values are inherently random: only their type is compared
RANDOM_KEYS = {
    "csrf_token", "authentication_token", "tf_state_token", "wan_state", "state",
    "tf_authr_key", "tf_authr_b32key", "tf_authr_uri", "authr_key", "authr_b32key",
    "authr_uri", "recovery_codes", "challenge",
}
# query keys in Location whose values are masked
TOKEN_QUERY_KEYS = {"token", "code", "id", "auth_token", "csrf_token", "tf_state_token"}

_NO = object()


# --------------------------------------------------------------------- utils
def _short(v, n=160):
    s = json.dumps(v, ensure_ascii=False, sort_keys=False) if not isinstance(v, str) else v
    return s if len(s) <= n else s[: n - 3] + "..."


def type_name(v):
    if v is None:
        return "null"
    return {str: "str", bool: "bool", int: "int", float: "float", list: "list", dict: "dict"}.get(type(v), type(v).__name__)


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forge_fs_token(token: str, secret_key: str, age_seconds: int = 0, uid: str | None = None):
    """Re-sign a Flask-Security auth token (itsdangerous URLSafeTimedSerializer,
    salt "remember-salt", HMAC-SHA1, key derivation django-concat) with a
    timestamp ``age_seconds`` in the past, optionally replacing ``uid``.
    Returns None when the token does not look like one."""
    import hmac

    import zlib

    compressed = token.startswith(".")
    parts = (token[1:] if compressed else token).split(".")
    if len(parts) != 3:
        return None
    try:
        raw = b64url_decode(parts[0])
        payload = json.loads(zlib.decompress(raw) if compressed else raw)
    except Exception:
        return None
    if uid is not None:
        payload["uid"] = uid
    body = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    ts = int(time.time()) - age_seconds
    ts_b = ts.to_bytes(8, "big").lstrip(b"\x00") or b"\x00"
    value = f"{body}.{b64url_encode(ts_b)}"
    key = hashlib.sha1(b"remember-salt" + b"signer" + secret_key.encode()).digest()
    sig = hmac.new(key, value.encode(), hashlib.sha1).digest()
    return f"{value}.{b64url_encode(sig)}"


_TOKENISH = re.compile(r"\.?[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-\.]{10,}")


def sanitize(v):
    """Replace token-shaped strings (random) by <token>, recursively (for request descriptions)."""
    if isinstance(v, dict):
        return {k: sanitize(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [sanitize(x) for x in v]
    if isinstance(v, str):
        return _TOKENISH.sub("<token>", v)
    return v


def token_shape(tok) -> str:
    """Shape of an itsdangerous auth token: payload keys (values are random)."""
    import zlib

    if not isinstance(tok, str):
        return f"<{type_name(tok)}>"
    body = tok[1:] if tok.startswith(".") else tok
    parts = body.split(".")
    if len(parts) != 3:
        return f"<str, {len(tok.split('.'))} dot-parts>"
    try:
        raw = b64url_decode(parts[0])
        if tok.startswith("."):
            raw = zlib.decompress(raw)
        payload = json.loads(raw)
        keys = sorted(payload) if isinstance(payload, dict) else type_name(payload)
        ver = payload.get("ver") if isinstance(payload, dict) else None
        return f"<fs-token keys={keys} ver={ver}>"
    except Exception:
        return "<str, undecodable payload>"


def csrf_raw(tok):
    """The signed payload of a Flask-WTF CSRF token (itsdangerous: payload.timestamp.signature);
    the timestamp/signature change every second, the payload only when the session's token changes."""
    if not isinstance(tok, str):
        return tok
    parts = tok.split(".")
    return parts[0] if len(parts) == 3 else tok


def tamper(token: str) -> str:
    """Change one character in the signature part (not the last one: it may
    only carry base64 padding bits)."""
    if len(token) < 6:
        return token + "x"
    i = len(token) - 5
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


# ------------------------------------------------------------------- context
class Ctx:
    """One app under test: sessions, mailbox, recorded observations."""

    def __init__(self, name: str, base: str, maildir: str, rnd: dict, secret_key: str):
        self.name = name
        self.base = base.rstrip("/")
        parts = urlsplit(self.base)
        self.host = parts.netloc
        self.maildir = maildir
        self.rnd = rnd  # label -> random hex (shared by both contexts)
        self.secret_key = secret_key
        self.sessions: dict[str, requests.Session] = {}
        self.csrf: dict[str, str | None] = {}
        self.obs: list[tuple[str, str, dict]] = []
        self.vars: dict = {}
        self.mail_also: set = set()  # extra recipient addresses (e.g. seeded users) whose mails count

    # ---- identities -----------------------------------------------------
    def hexid(self, label: str) -> str:
        if label not in self.rnd:
            self.rnd[label] = uuid.uuid4().hex[:12]
        return self.rnd[label]

    def email(self, label: str) -> str:
        return f"{label}-{self.hexid(label)}@example.com"

    def uname(self, label: str) -> str:
        return f"{label}{self.hexid(label)[:10]}"

    def mask(self, s):
        """Mask random parts in a string (or recursively in JSON)."""
        if isinstance(s, dict):
            return {k: self.mask(v) for k, v in s.items()}
        if isinstance(s, list):
            return [self.mask(v) for v in s]
        if not isinstance(s, str):
            return s
        for label, h in self.rnd.items():
            s = re.sub(re.escape(h), f"<R:{label}>", s, flags=re.I)
            s = re.sub(re.escape(h[:10]), f"<R:{label}>", s, flags=re.I)
        s = s.replace(self.host, "<host>")
        for tok_name in ("token", "tokenB", "tok_user", "tok_admin"):
            v = self.vars.get(tok_name)
            if isinstance(v, str) and len(v) > 8:
                s = s.replace(v, f"<{tok_name}>")
        for k, v in self.vars.items():
            if k.startswith("ctok_") and isinstance(v, str) and len(v) > 8:
                s = s.replace(v, f"<{k}>")
        return s

    def mask_random(self, v):
        """Mask values of RANDOM_KEYS at any depth, then the usual masking."""
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k == "authentication_token":
                    out[k] = token_shape(x)
                elif k in RANDOM_KEYS:
                    out[k] = f"<{type_name(x)}>"
                else:
                    out[k] = self.mask_random(x)
            return out
        if isinstance(v, list):
            return [self.mask_random(x) for x in v]
        return self.mask(v)

    # ---- sessions ---------------------------------------------------------
    def s(self, name: str) -> requests.Session:
        if name not in self.sessions:
            sess = requests.Session()
            sess.headers.pop("Accept", None)
            self.sessions[name] = sess
            self.csrf[name] = None
        return self.sessions[name]

    def fresh(self, name: str) -> requests.Session:
        if name in self.sessions:
            self.sessions[name].close()
            del self.sessions[name]
        return self.s(name)

    def cookie(self, sess: str, name: str):
        for c in self.s(sess).cookies:
            if c.name == name:
                return c.value
        return None

    def set_cookie(self, sess: str, name: str, value: str):
        host = urlsplit(self.base).hostname
        self.s(sess).cookies.set(name, value, domain=host, path="/")

    def drop_cookie(self, sess: str, name: str):
        jar = self.s(sess).cookies
        for c in list(jar):
            if c.name == name:
                jar.clear(c.domain, c.path, c.name)

    # ---- mail ---------------------------------------------------------------
    def _mail_files(self):
        return set(glob.glob(os.path.join(self.maildir, "*.json")))

    def _ours(self, d: dict) -> bool:
        tos = " ".join(d.get("to", []) + d.get("envelope_to", [])).lower()
        return any(h.lower() in tos for h in self.rnd.values()) or any(a.lower() in tos for a in self.mail_also)

    def mail_summary(self, m: dict) -> str:
        """recipient, subject and the links in the bodies (text + html; hosts and tokens masked)."""
        links = set()
        for body in (m.get("text") or "", m.get("html") or ""):
            for u in re.findall(r"https?://[^\s\"'<>]+", body):
                u = u.replace("&amp;", "&").rstrip(".,;:)")
                p = urlsplit(u)
                segs = ["<tok>" if (len(x) >= 20 and re.fullmatch(r"[A-Za-z0-9_\-\.]+", x)) else x
                        for x in p.path.split("/")]
                q = [(k, "<tok>" if k in TOKEN_QUERY_KEYS else v) for k, v in parse_qsl(p.query, keep_blank_values=True)]
                link = self.mask(f"{p.scheme}://{p.netloc}" + "/".join(segs))
                if q:
                    link += "?" + "&".join(f"{k}={self.mask(v)}" for k, v in q)
                links.add(link)
        out = f"to={self.mask(','.join(m.get('to', [])))} subject={m.get('subject')!r}"
        return out + f" links={sorted(links)}"

    def new_mails(self, before: set, expect: bool):
        """Mails to this run's generated addresses that arrived after ``before``."""
        def collect():
            out = []
            for p in sorted(self._mail_files() - before):
                try:
                    with open(p, encoding="utf-8") as fh:
                        d = json.load(fh)
                except (OSError, ValueError):
                    continue
                if self._ours(d):
                    out.append(d)
            return out

        if not expect:
            time.sleep(0.4)
            return collect()
        deadline = time.time() + 10.0
        while not collect() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        return collect()

    # ---- requests -------------------------------------------------------------
    def r(self, step, method, path, s="a", json_body=_NO, data=None, raw=None,
          params=None, accept="json", csrf="auto", headers=None, auth=None,
          content_type=None, mail=None, mask_keys=(), desc=None):
        """Perform one request and record its observation under ``step``.

        accept: "json" | "html" | "any" | None (no Accept header) | literal.
        csrf: "auto" (X-XSRF-TOKEN with the session's latest token on unsafe
              methods, when known) | False | a literal header value.
        mail: None | "expect" (wait for a mail) | "check" (collect briefly).
        """
        sess = self.s(s)
        url = path if path.startswith("http") else self.base + path
        hdrs = {}
        acc = ACCEPT.get(accept, accept)
        hdrs["Accept"] = acc  # None removes requests' default */*
        if csrf == "auto":
            if method.upper() not in ("GET", "HEAD", "OPTIONS") and self.csrf.get(s):
                hdrs["X-XSRF-TOKEN"] = self.csrf[s]
        elif csrf:
            hdrs["X-XSRF-TOKEN"] = csrf
        if headers:
            hdrs.update(headers)
        kw = {}
        if json_body is not _NO:
            kw["json"] = json_body
        if data is not None:
            kw["data"] = data
        if raw is not None:
            kw["data"] = raw
            hdrs.setdefault("Content-Type", content_type or "application/json")
        elif content_type:
            hdrs["Content-Type"] = content_type
        if params is not None:
            kw["params"] = params
        if auth is not None:
            kw["auth"] = auth
        before = self._mail_files() if mail else None
        if desc is None:
            path_d, params_d, json_d, data_d, headers_d = (
                sanitize(path), sanitize(params), sanitize(json_body), sanitize(data), sanitize(headers))
            parts = [method.upper(), path_d]
            if params is not None:
                parts.append("params=" + _short(self.mask(params_d), 120))
            if json_body is not _NO:
                parts.append("json=" + _short(self.mask(json_d), 160))
            if data is not None:
                parts.append("form=" + _short(self.mask(data_d), 160))
            if raw is not None:
                parts.append("raw=" + _short(raw, 80))
            if accept != "json":
                parts.append(f"Accept={accept!r}" if accept in ACCEPT else f"Accept={acc!r}")
            if headers_d:
                parts.append("headers=" + _short(headers_d, 120))
            if auth is not None:
                parts.append("basic-auth")
            if csrf not in ("auto", False):
                parts.append("X-XSRF-TOKEN=<literal>")
            elif csrf is False and method.upper() not in ("GET", "HEAD", "OPTIONS"):
                parts.append("(no csrf header)")
            parts.append(f"[session {s}]")
            desc = " ".join(parts)
        desc = self.mask(desc)
        try:
            resp = sess.request(method, url, headers=hdrs, allow_redirects=False, timeout=30, **kw)
        except requests.RequestException as e:
            self.obs.append((step, desc, {"exception": type(e).__name__ + ": " + str(e)[:200]}))
            return None
        o = self.observe(resp, mask_keys=mask_keys)
        if mail:
            mails = self.new_mails(before, expect=(mail == "expect"))
            o["mails"] = sorted(self.mail_summary(m) for m in mails)
            self.vars["_last_mails"] = mails
        self.obs.append((step, desc, o))
        self._track_csrf(s, resp)
        return resp

    def note(self, step, desc, value):
        """Record a derived observation (compared like any other)."""
        self.obs.append((step, self.mask(desc), {"value": self.mask(value)}))

    def _track_csrf(self, s, resp):
        tok = None
        d = safe_json(resp)
        if isinstance(d, dict) and isinstance(d.get("response"), dict):
            t = d["response"].get("csrf_token")
            if isinstance(t, str) and t:
                tok = t
        for h in set_cookie_headers(resp):
            n, v, a = parse_set_cookie(h)
            if n == "XSRF-TOKEN" and v:
                tok = v
        if tok:
            self.csrf[s] = tok

    # ---- observation --------------------------------------------------------
    def observe(self, resp: requests.Response, mask_keys=()) -> dict:
        o: dict = {"status": resp.status_code}
        ct = resp.headers.get("Content-Type")
        o["content_type"] = ct.replace(" ", "").lower() if ct else None
        data = safe_json(resp) if resp.content else None
        if isinstance(data, dict) and "meta" in data or isinstance(data, dict) and "response" in data:
            o["body"] = "<json>"
            o["json_keys"] = sorted(data.keys())
            meta = data.get("meta")
            o["meta"] = "== {code: status}" if meta == {"code": resp.status_code} else meta
            r = data.get("response")
            if isinstance(r, dict):
                o["response_keys"] = sorted(r.keys())
                if "errors" in r:
                    o["errors"] = self.mask(r["errors"])
                if "field_errors" in r:
                    fe = r["field_errors"]
                    o["field_errors"] = (
                        sorted((k, self.mask(v)) for k, v in fe.items()) if isinstance(fe, dict) else self.mask(fe)
                    )
                    if isinstance(fe, dict) and len(fe) > 1:
                        o["field_errors_order"] = list(fe.keys())
                vals = {}
                for k, v in r.items():
                    if k in ("errors", "field_errors"):
                        continue
                    vals[k] = self.mask_random(v) if k not in mask_keys else f"<{type_name(v)}>"
                    if k in RANDOM_KEYS:
                        vals[k] = token_shape(v) if k == "authentication_token" else f"<{type_name(v)}>"
                o["response_values"] = dict(sorted(vals.items()))
            else:
                o["response"] = self.mask(r)
        elif data is not None:
            o["body"] = "<json>"
            if isinstance(data, dict):
                o["json"] = {k: (f"<{type_name(v)}>" if k in mask_keys else self.mask(v)) for k, v in data.items()}
            else:
                o["json"] = self.mask(data)
        else:
            text = resp.text if resp.content else ""
            if not text:
                o["body"] = "<empty>"
            elif 300 <= resp.status_code < 400:
                o["body"] = "<redirect body>"
            elif "<" in text:
                names = sorted(set(re.findall(r"<(?:input|select|textarea)[^>]*\bname=[\"']?([^\"' >]+)", text, re.I)))
                title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
                o["body"] = "<html>"
                if names:
                    o["html_form_inputs"] = names
                o["html_title"] = self.mask(title.group(1).strip()) if title else None
            else:
                o["body"] = self.mask(text[:300])
        loc = resp.headers.get("Location")
        if loc is not None:
            o["location_raw"] = self.mask(mask_location_raw(loc))
            p = urlsplit(loc)
            o["location"] = {
                "scheme+host": self.mask(f"{p.scheme}://{p.netloc}") if p.netloc or p.scheme else "",
                "path": self.mask(p.path),
                "query": [
                    (k, "<tok>" if k in TOKEN_QUERY_KEYS else self.mask(v))
                    for k, v in parse_qsl(p.query, keep_blank_values=True)
                ],
            }
        cookies: dict = {}
        for h in set_cookie_headers(resp):
            n, v, a = parse_set_cookie(h)
            cookies.setdefault(n, []).append(describe_cookie(n, v, a))
        o["set_cookie"] = sorted(cookies)
        for n, descs in sorted(cookies.items()):
            o[f"set_cookie[{n}]"] = descs[0] if len(descs) == 1 else descs
        cc = resp.headers.get("Cache-Control")
        o["cache_control"] = (
            sorted({d.split("=")[0].strip().lower() for d in cc.split(",") if d.strip()}) if cc is not None else None
        )
        o["www_authenticate"] = "WWW-Authenticate" in resp.headers
        vary = resp.headers.get("Vary")
        o["vary"] = sorted({v.strip().lower() for v in vary.split(",")}) if vary else None
        allow = resp.headers.get("Allow")
        if allow is not None or resp.request.method == "OPTIONS" or resp.status_code == 405:
            o["allow"] = sorted({m.strip().upper() for m in allow.split(",")}) if allow else None
        return o


def safe_json(resp):
    try:
        return resp.json()
    except ValueError:
        return None


def set_cookie_headers(resp) -> list[str]:
    raw = resp.raw.headers
    if hasattr(raw, "getlist"):
        return list(raw.getlist("Set-Cookie"))
    v = resp.headers.get("Set-Cookie")
    return [v] if v else []


def parse_set_cookie(header: str):
    parts = [p.strip() for p in header.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), value.strip(), attrs


def describe_cookie(name, value, attrs) -> str:
    bits = []
    deleted = False
    ma = attrs.get("max-age")
    if ma is not None:
        try:
            deleted = int(ma) <= 0
        except ValueError:
            pass
        bits.append("Max-Age=0" if deleted else "Max-Age>0")
    exp = attrs.get("expires")
    if exp is not None:
        past = False
        try:
            from email.utils import parsedate_to_datetime

            past = parsedate_to_datetime(exp).timestamp() < time.time()
        except Exception:
            pass
        bits.append("Expires(past)" if past else "Expires")
        deleted = deleted or past
    for flag in ("httponly", "secure"):
        if attrs.get(flag):
            bits.append({"httponly": "HttpOnly", "secure": "Secure"}[flag])
    if "samesite" in attrs:
        bits.append(f"SameSite={attrs['samesite']}")
    if "path" in attrs:
        bits.append(f"Path={attrs['path']}")
    if "domain" in attrs:
        bits.append("Domain")
    if not value:
        bits.append("empty-value")
    if deleted:
        bits.append("(deleting)")
    return " ".join(bits)


def mask_location_raw(loc: str) -> str:
    p = urlsplit(loc)
    if not p.query:
        return loc
    out = []
    for pair in p.query.split("&"):
        k, eq, v = pair.partition("=")
        if unquote_plus(k) in TOKEN_QUERY_KEYS and eq:
            out.append(f"{k}=<tok>")
        else:
            out.append(pair)
    base = loc[: len(loc) - len(p.query) - (len(p.fragment) + 1 if p.fragment else 0)]
    return base + "&".join(out) + (("#" + p.fragment) if p.fragment else "")


def jget(resp, *keys):
    d = safe_json(resp) if resp is not None else None
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


# ================================================================= scenarios
SCENARIOS = []


# Scenario "pairs": which two apps a scenario runs against.
#   main      --ref / --target (the standard configuration)
#   username  --ref-username (a reference started from a copy of reference_app.py with
#             SECURITY_CHANGE_USERNAME and SECURITY_USERNAME_RECOVERY on) / --target
#             (the quickstart always enables both)
#   generic   --ref-generic / --target-generic (both started with FS_GENERIC_RESPONSES=1)
PAIRS = {
    "main": ("ref", "target"),
    "username": ("ref_username", "target"),
    "generic": ("ref_generic", "target_generic"),
}


def scenario(fn=None, pair="main"):
    def deco(f):
        f.pair = pair
        SCENARIOS.append(f)
        return f
    return deco(fn) if fn is not None else deco


def login(t, step, s, who, params=None, **kw):
    email, pw = who
    return t.r(step, "POST", "/login", s=s, json_body={"email": email, "password": pw}, params=params, **kw)


def register(t, step, s, label, username=True, password="password123"):
    """Register a fresh user; returns (email, confirm token or placeholder)."""
    email = t.email(label)
    body = {"email": email, "password": password, "password_confirm": password}
    if username:
        body["username"] = t.uname(label)
    t.r(step, "POST", "/register", s=s, json_body=body, mail="expect")
    tok = None
    for m in t.vars.get("_last_mails", []):
        mm = re.search(r"https?://[^\s\"'<>]+/confirm/([A-Za-z0-9_\-\.]+)", m.get("text", "") or "")
        if mm:
            tok = mm.group(1)
    t.vars["ctok_" + label] = tok or f"missing-token-{label}"
    return email, t.vars["ctok_" + label]


@scenario
def login_get(t):
    t.r("GET /login json", "GET", "/login")
    t.r("GET /login html", "GET", "/login", s="h", accept="html")
    t.r("GET /login Accept */*", "GET", "/login", s="any", accept="any")
    t.r("GET /login no Accept", "GET", "/login", s="noacc", accept=None)
    t.r("GET /login ?include_auth_token anon", "GET", "/login", s="b", params={"include_auth_token": ""})
    t.r("GET /login ?next=//evil.com", "GET", "/login", s="b", params={"next": "//evil.com"})
    t.r("HEAD /login", "HEAD", "/login", s="c")
    t.r("OPTIONS /login", "OPTIONS", "/login", s="c")
    login(t, "login user", "d", USER)
    t.r("GET /login json logged in", "GET", "/login", s="d")
    t.r("GET /login html logged in", "GET", "/login", s="d", accept="html")
    t.r("GET /login ?include_auth_token logged in", "GET", "/login", s="d", params={"include_auth_token": ""})


@scenario
def login_json_validation(t):
    em, pw = USER
    cases = [
        ("empty {}", {}),
        ("only password", {"password": pw}),
        ("only username", {"username": "user"}),
        ("only email", {"email": em}),
        ("empty strings", {"email": "", "password": ""}),
        ("empty email + password", {"email": "", "password": pw}),
        ("username empty + password", {"username": "", "password": pw}),
        ("unknown username", {"username": "nosuchuser", "password": "whatever1"}),
        ("unknown email", {"email": "nosuchuser@example.com", "password": "whatever1"}),
        ("invalid email format", {"email": "not-an-email", "password": "whatever1"}),
        ("email without tld", {"email": "a@b", "password": "whatever1"}),
        ("wrong password", {"email": em, "password": "wrongpass"}),
        ("username wrong password", {"username": "user", "password": "wrongpass"}),
        ("disabled wrong password", {"email": DISABLED[0], "password": "wrongpass"}),
        ("disabled right password", {"email": DISABLED[0], "password": DISABLED[1]}),
        ("disabled by username right password", {"username": "disabled", "password": DISABLED[1]}),
        ("email non-string dict", {"email": {"a": 1}, "password": pw}),
        ("email list", {"email": [em], "password": pw}),
        ("email null", {"email": None, "password": pw}),
        ("email int", {"email": 5, "password": pw}),
        ("password int", {"email": em, "password": 123456}),
        ("password null", {"email": em, "password": None}),
        ("username int", {"username": 1234, "password": pw}),
        ("email+username both, conflicting", {"email": em, "username": "admin", "password": pw}),
        ("email+username both, matching", {"email": em, "username": "user", "password": pw}),
        ("uppercase email ok", {"email": em.upper(), "password": pw}),
        ("uppercase username ok", {"username": "USER", "password": pw}),
        ("email with spaces", {"email": "  " + em + " ", "password": pw}),
        ("email as username field", {"username": em, "password": pw}),
        ("username in email field", {"email": "user", "password": pw}),
        ("password with trailing space", {"email": em, "password": pw + " "}),
        ("unknown extra field", {"email": em, "password": pw, "foo": "bar"}),
        ("identity key (us-signin style)", {"identity": em, "password": pw}),
    ]
    for i, (name, body) in enumerate(cases):
        t.r(f"POST /login {name}", "POST", "/login", s=f"v{i}", json_body=body)
    t.r("POST /login invalid JSON", "POST", "/login", s="raw1", raw="{bad json")
    t.r("POST /login JSON array", "POST", "/login", s="raw2", raw=json.dumps([em, pw]))
    t.r("POST /login JSON string", "POST", "/login", s="raw3", raw='"hello"')
    t.r("POST /login empty body json ctype", "POST", "/login", s="raw4", raw="")
    t.r("POST /login no body no ctype", "POST", "/login", s="raw5")
    t.r("POST /login form body Accept json", "POST", "/login", s="f1", data={"email": em, "password": pw})
    t.r("POST /login form body Accept json wrong pw", "POST", "/login", s="f2", data={"email": em, "password": "nope"})
    t.r("POST /login ctype json;charset=utf-8", "POST", "/login", s="f3",
        raw=json.dumps({"email": em, "password": pw}), content_type="application/json; charset=utf-8")
    t.r("POST /login ctype text/plain json body", "POST", "/login", s="f4",
        raw=json.dumps({"email": em, "password": pw}), content_type="text/plain")


@scenario
def login_remember(t):
    for i, (name, val) in enumerate([
        ("true", True), ("false", False), ("string 'yes'", "yes"), ("string 'true'", "true"),
        ("string 'false'", "false"), ("empty string", ""), ("int 1", 1), ("int 0", 0), ("null", None),
        ("list", [1]),
    ]):
        t.r(f"POST /login remember={name}", "POST", "/login", s=f"r{i}",
            json_body={"email": USER[0], "password": USER[1], "remember": val})
    # remember cookie alone re-authenticates
    rt = t.cookie("r0", "remember_token")
    t.note("remember_token cookie present after remember=true", "jar of r0", rt is not None)
    if rt:
        t.set_cookie("ronly", "remember_token", rt)
        t.r("GET /api/data with only remember_token", "GET", "/api/data", s="ronly")
        t.r("GET /api/data again (session from remember)", "GET", "/api/data", s="ronly")
        t.r("POST /logout (remember session)", "POST", "/logout", s="ronly", json_body={})
        t.r("GET /api/data after logout (remember session)", "GET", "/api/data", s="ronly")
    t.set_cookie("rbad", "remember_token", "garbage.value.here")
    t.r("GET /api/data with garbage remember_token", "GET", "/api/data", s="rbad")
    t.r("GET / with garbage remember_token html", "GET", "/", s="rbad", accept="html")
    t.r("form login remember=y html", "POST", "/login", s="rform", accept="html",
        data={"email": USER[0], "password": USER[1], "remember": "y"})


@scenario
def login_include_auth_token(t):
    for i, (name, params) in enumerate([
        ("?include_auth_token", {"include_auth_token": ""}),
        ("?include_auth_token=false", {"include_auth_token": "false"}),
        ("?include_auth_token=0", {"include_auth_token": "0"}),
        ("?include_auth_token=true", {"include_auth_token": "true"}),
        ("?INCLUDE_AUTH_TOKEN (case)", {"INCLUDE_AUTH_TOKEN": "1"}),
    ]):
        login(t, f"POST /login {name}", f"i{i}", USER, params=params)
    t.r("POST /login body include_auth_token=true", "POST", "/login", s="ib",
        json_body={"email": USER[0], "password": USER[1], "include_auth_token": True})
    t.r("POST /login form + ?include_auth_token Accept json", "POST", "/login", s="if",
        params={"include_auth_token": ""}, data={"email": USER[0], "password": USER[1]})
    t.r("POST /login wrong pw ?include_auth_token", "POST", "/login", s="iw",
        params={"include_auth_token": ""}, json_body={"email": USER[0], "password": "nope"})


NEXT_VARIANTS = [
    ("//evil.com", "//evil.com"),
    ("///x", "///x"),
    ("javascript:alert(1)", "javascript:alert(1)"),
    ("http://<same host>/x", "http://{host}/x"),
    ("https://evil.com/x", "https://evil.com/x"),
    ("\\\\evil.com (2 backslashes)", "\\\\evil.com"),
    ("/\\evil.com", "/\\evil.com"),
    (" //evil.com (leading space)", " //evil.com"),
    ("/\\t/evil.com (tab)", "/\t/evil.com"),
    ("http:evil.com", "http:evil.com"),
    ("relative /user-data?x=1", "/user-data?x=1"),
    ("relative no slash user-data", "user-data"),
    ("empty", ""),
]


@scenario
def login_next_json(t):
    for i, (name, v) in enumerate(NEXT_VARIANTS):
        v = v.replace("{host}", t.host)
        login(t, f"POST /login ?next={name}", f"q{i}", USER, params={"next": v})
        t.r(f"POST /login body next={name}", "POST", "/login", s=f"b{i}",
            json_body={"email": USER[0], "password": USER[1], "next": v})
    t.r("POST /login ?next=/user-data + body next=//evil.com", "POST", "/login", s="mix1",
        params={"next": "/user-data"}, json_body={"email": USER[0], "password": USER[1], "next": "//evil.com"})
    t.r("POST /login ?next=//evil.com + body next=/user-data", "POST", "/login", s="mix2",
        params={"next": "//evil.com"}, json_body={"email": USER[0], "password": USER[1], "next": "/user-data"})
    t.r("POST /login wrong pw + ?next=//evil.com", "POST", "/login", s="mix3",
        params={"next": "//evil.com"}, json_body={"email": USER[0], "password": "nope"})
    t.r("POST /login body next non-string", "POST", "/login", s="mix4",
        json_body={"email": USER[0], "password": USER[1], "next": {"a": 1}})


@scenario
def login_form_html(t):
    em, pw = USER
    t.r("form login success no next", "POST", "/login", s="f0", accept="html", data={"email": em, "password": pw})
    t.r("GET / after form login html", "GET", "/", s="f0", accept="html")
    t.r("form login success ?next=/user-data?x=1", "POST", "/login", s="f1", accept="html",
        params={"next": "/user-data?x=1"}, data={"email": em, "password": pw})
    t.r("form login success form next=/admin", "POST", "/login", s="f2", accept="html",
        data={"email": em, "password": pw, "next": "/admin"})
    t.r("form login wrong password", "POST", "/login", s="f3", accept="html", data={"email": em, "password": "nope"})
    t.r("form login unknown user", "POST", "/login", s="f4", accept="html",
        data={"email": "nosuch@example.com", "password": "nope12"})
    t.r("form login empty form", "POST", "/login", s="f5", accept="html", data={"x": ""})
    t.r("form login disabled right pw", "POST", "/login", s="f6", accept="html",
        data={"email": DISABLED[0], "password": DISABLED[1]})
    for i, (name, v) in enumerate(NEXT_VARIANTS):
        v = v.replace("{host}", t.host)
        t.r(f"form login ?next={name}", "POST", "/login", s=f"n{i}", accept="html",
            params={"next": v}, data={"email": em, "password": pw})
    t.r("form login Accept */*", "POST", "/login", s="a1", accept="any", data={"email": em, "password": pw})
    t.r("form login no Accept header", "POST", "/login", s="a2", accept=None, data={"email": em, "password": pw})
    t.r("form login Accept json;q=0.5, text/html", "POST", "/login", s="a3",
        accept="application/json;q=0.5, text/html", data={"email": em, "password": pw})
    t.r("form login Accept text/html;q=0.5, application/json", "POST", "/login", s="a4",
        accept="text/html;q=0.5, application/json", data={"email": em, "password": pw})
    t.r("JSON login Accept */*", "POST", "/login", s="a5", accept="any", json_body={"email": em, "password": pw})
    t.r("JSON login Accept text/html", "POST", "/login", s="a6", accept="html", json_body={"email": em, "password": pw})
    t.r("JSON login wrong pw Accept text/html", "POST", "/login", s="a7", accept="html",
        json_body={"email": em, "password": "nope"})
    t.r("form login html when already logged in", "POST", "/login", s="f0", accept="html",
        data={"email": em, "password": pw})
    t.r("form login html when already logged in + form csrf_token", "POST", "/login", s="f0", accept="html",
        csrf=False, data={"email": em, "password": pw, "csrf_token": t.csrf.get("f0") or ""})


@scenario
def logout(t):
    t.r("POST /logout anon json", "POST", "/logout", s="a", json_body={})
    t.r("POST /logout anon html form", "POST", "/logout", s="a", accept="html", data={})
    t.r("GET /logout json", "GET", "/logout", s="a")
    t.r("GET /logout html", "GET", "/logout", s="a", accept="html")
    t.r("DELETE /logout", "DELETE", "/logout", s="a")
    login(t, "login user", "b", USER)
    t.r("GET /logout logged in", "GET", "/logout", s="b")
    t.r("GET /api/data still logged in after GET /logout", "GET", "/api/data", s="b")
    t.r("POST /logout logged in no CSRF", "POST", "/logout", s="b", csrf=False, json_body={})
    t.r("GET /api/data after logout", "GET", "/api/data", s="b")
    t.r("POST /logout again (already out)", "POST", "/logout", s="b", json_body={})
    login(t, "login user (c)", "c", USER)
    t.r("POST /logout html form logged in", "POST", "/logout", s="c", accept="html", csrf=False, data={})
    login(t, "login user (d)", "d", USER)
    t.r("POST /logout html ?next=/user-data", "POST", "/logout", s="d", accept="html", csrf=False,
        params={"next": "/user-data"}, data={})
    login(t, "login user (e)", "e", USER)
    t.r("POST /logout json ?next=//evil.com", "POST", "/logout", s="e", params={"next": "//evil.com"}, json_body={})
    login(t, "login user (g)", "g", USER)
    t.r("POST /logout garbage CSRF header", "POST", "/logout", s="g", csrf="garbage", json_body={})
    # session cookie replay after logout
    login(t, "login user (h)", "h", USER)
    sc = t.cookie("h", "session")
    t.r("POST /logout (h)", "POST", "/logout", s="h", json_body={})
    if sc:
        t.set_cookie("replay", "session", sc)
        t.r("GET /api/data replaying pre-logout session cookie", "GET", "/api/data", s="replay")
    else:
        t.note("no session cookie after login (h)", "-", "missing")


@scenario
def verify(t):
    t.r("GET /verify anon json", "GET", "/verify", s="a")
    t.r("GET /verify anon html", "GET", "/verify", s="a", accept="html")
    t.r("GET /verify anon html ?next=/x", "GET", "/verify", s="a", accept="html", params={"next": "/x"})
    t.r("POST /verify anon json", "POST", "/verify", s="a", json_body={"password": USER[1]})
    login(t, "login user", "b", USER)
    t.r("GET /verify logged in", "GET", "/verify", s="b")
    t.r("GET /verify logged in html", "GET", "/verify", s="b", accept="html")
    t.r("POST /verify {} missing password", "POST", "/verify", s="b", json_body={})
    t.r("POST /verify empty password", "POST", "/verify", s="b", json_body={"password": ""})
    t.r("POST /verify wrong password", "POST", "/verify", s="b", json_body={"password": "wrongpw"})
    t.r("POST /verify non-string password", "POST", "/verify", s="b", json_body={"password": 123456})
    t.r("POST /verify no CSRF", "POST", "/verify", s="b", csrf=False, json_body={"password": USER[1]})
    t.r("POST /verify garbage CSRF", "POST", "/verify", s="b", csrf="garbage", json_body={"password": USER[1]})
    t.r("POST /verify right password", "POST", "/verify", s="b", json_body={"password": USER[1]})
    t.r("POST /verify ?include_auth_token", "POST", "/verify", s="b", params={"include_auth_token": ""},
        json_body={"password": USER[1]})
    t.r("POST /verify ?next=/user-data", "POST", "/verify", s="b", params={"next": "/user-data"},
        json_body={"password": USER[1]})
    t.r("POST /verify ?next=//evil.com", "POST", "/verify", s="b", params={"next": "//evil.com"},
        json_body={"password": USER[1]})
    t.r("POST /verify form html", "POST", "/verify", s="b", accept="html", csrf=False,
        data={"password": USER[1], "csrf_token": t.csrf.get("b") or ""})
    t.r("POST /verify form html wrong pw", "POST", "/verify", s="b", accept="html", csrf=False,
        data={"password": "wrongpw", "csrf_token": t.csrf.get("b") or ""})
    r = login(t, "login user ?include_auth_token (tok)", "tok", USER, params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["token"] = tok
    t.r("GET /verify token only", "GET", "/verify", s="t1", headers={"X-Auth-Token": tok})
    t.r("POST /verify token only right pw", "POST", "/verify", s="t2", headers={"X-Auth-Token": tok},
        json_body={"password": USER[1]})
    t.r("POST /verify token only wrong pw", "POST", "/verify", s="t3", headers={"X-Auth-Token": tok},
        json_body={"password": "wrongpw"})
    t.r("POST /verify token in body", "POST", "/verify", s="t4", json_body={"password": USER[1], "auth_token": tok})


@scenario
def register_validation(t):
    good = "password123"

    def reg(name, label, body, **kw):
        return t.r(f"POST /register {name}", "POST", "/register", s="s_" + label, json_body=body, **kw)

    e = t.email
    reg("empty {}", "empty", {})
    reg("missing email", "noemail", {"password": good, "password_confirm": good})
    reg("empty email", "emptyemail", {"email": "", "password": good, "password_confirm": good})
    reg("invalid email", "inv", {"email": "not-an-email", "password": good, "password_confirm": good})
    reg("email no tld a@b", "inv2", {"email": "a@b", "password": good, "password_confirm": good})
    reg("email with display name", "inv3", {"email": f"Bob <{e('inv3')}>", "password": good, "password_confirm": good})
    reg("uppercase duplicate of seeded USER@EXAMPLE.COM", "dup", {"email": "USER@EXAMPLE.COM", "password": good,
                                                                  "password_confirm": good})
    reg("duplicate seeded user@example.com + dup username", "dup2",
        {"email": "user@example.com", "username": "user", "password": good, "password_confirm": good})
    reg("duplicate username ADMIN (case)", "dupu", {"email": e("dupu"), "username": "ADMIN", "password": good,
                                                    "password_confirm": good})
    reg("username too short", "short", {"email": e("short"), "username": "abc", "password": good,
                                        "password_confirm": good})
    reg("username 33 chars", "long", {"email": e("long"), "username": "a" * 33, "password": good,
                                      "password_confirm": good})
    reg("username 32 chars", "u32", {"email": e("u32"), "username": "b" + t.hexid("u32") + "c" * 19,
                                     "password": good, "password_confirm": good}, mail="check")
    reg("username with symbols", "sym", {"email": e("sym"), "username": "ab_cd!", "password": good,
                                         "password_confirm": good})
    reg("username with space", "spc", {"email": e("spc"), "username": "ab cd ef", "password": good,
                                       "password_confirm": good})
    reg("username with HTML", "html", {"email": e("html"), "username": "<b>bobby</b>", "password": good,
                                       "password_confirm": good})
    reg("username non-string", "unum", {"email": e("unum"), "username": 12345, "password": good,
                                        "password_confirm": good})
    reg("username empty string", "uempty", {"email": e("uempty"), "username": "", "password": good,
                                            "password_confirm": good}, mail="check")
    reg("username unicode letters", "uuni", {"email": e("uuni"), "username": "J\u00fcrgen" + t.hexid("uuni")[:10],
                                            "password": good, "password_confirm": good}, mail="check")
    reg("password_confirm missing", "pcm", {"email": e("pcm"), "password": good})
    reg("password_confirm empty", "pce", {"email": e("pce"), "password": good, "password_confirm": ""})
    reg("password mismatch", "pmm", {"email": e("pmm"), "password": good, "password_confirm": good + "x"})
    reg("password missing", "pmiss", {"email": e("pmiss"), "password_confirm": good})
    reg("password too short", "pshort", {"email": e("pshort"), "password": "abc", "password_confirm": "abc"})
    reg("password 200 chars", "plong", {"email": e("plong"), "password": "p" * 200, "password_confirm": "p" * 200},
        mail="check")
    reg("password 129 chars", "p129", {"email": e("p129"), "password": "q" * 129, "password_confirm": "q" * 129},
        mail="check")
    reg("password 128 chars", "p128", {"email": e("p128"), "password": "r" * 128, "password_confirm": "r" * 128},
        mail="check")
    reg("password non-string", "pnum", {"email": e("pnum"), "password": 12345678, "password_confirm": 12345678})
    reg("password_confirm non-string", "pcnum", {"email": e("pcnum"), "password": "12345678",
                                                 "password_confirm": 12345678})
    reg("password whitespace only", "pws", {"email": e("pws"), "password": "        ",
                                            "password_confirm": "        "})
    reg("email non-string", "enum", {"email": {"a": 1}, "password": good, "password_confirm": good})
    reg("all errors at once", "allbad", {"email": "bad", "username": "x!", "password": "a", "password_confirm": "b"})
    t.r("POST /register invalid JSON", "POST", "/register", s="s_badjson", raw="{not json")
    reg("extra unknown field", "extra", {"email": e("extra"), "password": good, "password_confirm": good,
                                         "roles": ["admin"], "active": False}, mail="check")
    # successes / normalisation
    reg("success with username", "ok1", {"email": e("ok1"), "username": t.uname("ok1"), "password": good,
                                         "password_confirm": good}, mail="expect")
    reg("duplicate of new user, uppercased", "ok1dup", {"email": e("ok1").upper(), "password": good,
                                                        "password_confirm": good})
    reg("duplicate username of new user, uppercased", "ok1dupu",
        {"email": e("ok1dupu"), "username": t.uname("ok1").upper(), "password": good, "password_confirm": good})
    r = reg("success ?include_auth_token", "ok2", {"email": e("ok2"), "password": good, "password_confirm": good},
            params={"include_auth_token": ""}, mail="expect")
    tok = jget(r, "response", "user", "authentication_token")
    t.vars["token"] = tok or "missing-token"
    t.r("GET /api/protected with token from ?include_auth_token register (unconfirmed user)", "GET",
        "/api/protected", s="s_ok2tok", headers={"X-Auth-Token": tok or "missing-token"},
        mask_keys=("message", "user_id"))
    norm = f"norm-{t.hexid('norm')}@EXAMPLE.COM"
    reg("uppercase-domain email", "norm", {"email": norm, "password": good, "password_confirm": good}, mail="expect")
    reg("same email lowercase domain (dup?)", "norm2", {"email": norm.lower(), "password": good,
                                                        "password_confirm": good})
    reg("same email uppercase local part (dup?)", "norm3", {"email": norm.upper(), "password": good,
                                                            "password_confirm": good})
    t.r("POST /login uppercase-domain user lowercase (unconfirmed)", "POST", "/login", s="nl",
        json_body={"email": norm.lower(), "password": good})
    t.r("POST /confirm uppercase-domain user lowercase", "POST", "/confirm", s="nc",
        json_body={"email": norm.lower()}, mail="expect")
    reg("email surrounded by spaces", "spaces", {"email": "  " + e("spaces") + "  ", "password": good,
                                                 "password_confirm": good}, mail="check")
    reg("IDN domain", "idn", {"email": f"idn-{t.hexid('idn')}@b\u00fccher.example", "password": good,
                              "password_confirm": good}, mail="check")
    t.r("POST /register form html success", "POST", "/register", s="s_form", accept="html",
        data={"email": e("form"), "password": good, "password_confirm": good}, mail="expect")
    t.r("POST /register form html invalid", "POST", "/register", s="s_form2", accept="html",
        data={"email": "bad", "password": good, "password_confirm": good})
    t.r("POST /register ?next=/user-data success", "POST", "/register", s="s_next",
        params={"next": "/user-data"}, json_body={"email": e("next"), "password": good, "password_confirm": good},
        mail="expect")
    t.r("POST /register ?next=//evil.com", "POST", "/register", s="s_next2",
        params={"next": "//evil.com"}, json_body={"email": e("next2"), "password": good, "password_confirm": good},
        mail="check")


@scenario
def register_logged_in(t):
    t.r("GET /register anon json", "GET", "/register", s="a")
    t.r("GET /register anon html", "GET", "/register", s="a", accept="html")
    t.r("HEAD /register anon", "HEAD", "/register", s="a")
    login(t, "login user", "b", USER)
    t.r("GET /register logged in json", "GET", "/register", s="b")
    t.r("GET /register logged in html", "GET", "/register", s="b", accept="html")
    pw = "password123"
    t.r("POST /register logged in (csrf ok)", "POST", "/register", s="b",
        json_body={"email": t.email("li"), "password": pw, "password_confirm": pw}, mail="check")
    t.r("POST /register logged in no CSRF", "POST", "/register", s="b", csrf=False,
        json_body={"email": t.email("li2"), "password": pw, "password_confirm": pw})
    t.r("POST /register logged in invalid body", "POST", "/register", s="b", json_body={})
    t.r("POST /register logged in html form", "POST", "/register", s="b", accept="html", csrf=False,
        data={"email": t.email("li3"), "password": pw, "password_confirm": pw, "csrf_token": t.csrf.get("b") or ""})
    r = login(t, "login user ?include_auth_token", "tok", USER, params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["token"] = tok
    t.r("POST /register with X-Auth-Token (token-authenticated)", "POST", "/register", s="t",
        headers={"X-Auth-Token": tok}, json_body={"email": t.email("li4"), "password": pw, "password_confirm": pw},
        mail="check")
    t.r("GET /register with X-Auth-Token", "GET", "/register", s="t", headers={"X-Auth-Token": tok})


@scenario
def confirm(t):
    t.r("GET /confirm anon json", "GET", "/confirm", s="a")
    t.r("GET /confirm anon html", "GET", "/confirm", s="a", accept="html")
    t.r("POST /confirm {}", "POST", "/confirm", s="a", json_body={})
    t.r("POST /confirm empty email", "POST", "/confirm", s="a", json_body={"email": ""})
    t.r("POST /confirm invalid email", "POST", "/confirm", s="a", json_body={"email": "not-an-email"})
    t.r("POST /confirm unknown", "POST", "/confirm", s="a", json_body={"email": "nosuch@example.com"})
    t.r("POST /confirm already confirmed seeded", "POST", "/confirm", s="a", json_body={"email": USER[0]})
    t.r("POST /confirm already confirmed uppercase", "POST", "/confirm", s="a", json_body={"email": USER[0].upper()})
    t.r("POST /confirm disabled (confirmed)", "POST", "/confirm", s="a", json_body={"email": DISABLED[0]})
    t.r("POST /confirm non-string email", "POST", "/confirm", s="a", json_body={"email": ["x"]})
    t.r("POST /confirm by username", "POST", "/confirm", s="a", json_body={"email": "user"})
    t.r("POST /confirm form html unknown", "POST", "/confirm", s="a", accept="html", data={"email": "nosuch@example.com"})
    email, tok1 = register(t, "register c1", "a", "c1")
    t.r("POST /login c1 before confirm", "POST", "/login", s="l1", json_body={"email": email, "password": "password123"})
    t.r("POST /login c1 before confirm wrong pw", "POST", "/login", s="l1",
        json_body={"email": email, "password": "wrongpw"})
    t.r("POST /login c1 by username before confirm", "POST", "/login", s="l1",
        json_body={"username": t.uname("c1"), "password": "password123"})
    t.r("POST /confirm c1 resend", "POST", "/confirm", s="a", json_body={"email": email}, mail="expect")
    tok2 = None
    for m in t.vars.get("_last_mails", []):
        mm = re.search(r"https?://[^\s\"'<>]+/confirm/([A-Za-z0-9_\-\.]+)", m.get("text", "") or "")
        if mm:
            tok2 = mm.group(1)
    t.vars["ctok_c1b"] = tok2 = tok2 or "missing-token-c1b"
    t.r("POST /confirm c1 uppercase resend", "POST", "/confirm", s="a", json_body={"email": email.upper()},
        mail="expect")
    t.r("POST /confirm c1 ?include_auth_token", "POST", "/confirm", s="a", params={"include_auth_token": ""},
        json_body={"email": email}, mail="check")
    t.r("GET /confirm/<garbage> json", "GET", "/confirm/not-a-real-token", s="a")
    t.r("GET /confirm/<garbage> html", "GET", "/confirm/not-a-real-token", s="a", accept="html")
    t.r("GET /confirm/<tampered c1>", "GET", "/confirm/" + tamper(tok1), s="a")
    t.r("GET /confirm/<c1 token> json", "GET", f"/confirm/{tok1}", s="a")
    t.r("GET /api/data after confirm (no auto-login)", "GET", "/api/data", s="a")
    t.r("GET /confirm/<c1 token> reused", "GET", f"/confirm/{tok1}", s="a")
    t.r("GET /confirm/<c1 resend token> after confirmed", "GET", f"/confirm/{tok2}", s="a")
    t.r("GET /confirm/<c1 token> reused html", "GET", f"/confirm/{tok1}", s="a", accept="html")
    t.r("POST /confirm c1 already confirmed", "POST", "/confirm", s="a", json_body={"email": email})
    t.r("POST /login c1 after confirm", "POST", "/login", s="l2", json_body={"email": email, "password": "password123"})
    t.r("GET /user-data c1 (no roles) json", "GET", "/user-data", s="l2")
    t.r("GET /user-data c1 (no roles) html", "GET", "/user-data", s="l2", accept="html")
    t.r("GET /admin c1 json", "GET", "/admin", s="l2")
    t.r("GET / c1", "GET", "/", s="l2", accept="html")
    # another user's token while a session is logged in
    login(t, "session S: login user", "S", USER)
    t.r("session S: GET /api/data before", "GET", "/api/data", s="S")
    email2, tokB = register(t, "register c2 (other session)", "o", "c2")
    t.vars["tokenB"] = tokB
    t.r("session S: GET /confirm/<c2 token>", "GET", f"/confirm/{tokB}", s="S")
    t.r("session S: GET /api/data after confirming other user", "GET", "/api/data", s="S")
    t.r("session S: GET /login after", "GET", "/login", s="S")
    # same, but the token is reused (already confirmed) while logged in
    login(t, "session S2: login user", "S2", USER)
    t.r("session S2: GET /confirm/<c2 token> (already used)", "GET", f"/confirm/{tokB}", s="S2")
    t.r("session S2: GET /api/data after", "GET", "/api/data", s="S2")
    login(t, "session S3: login user", "S3", USER)
    t.r("session S3: GET /confirm/<garbage>", "GET", "/confirm/garbage", s="S3")
    t.r("session S3: GET /api/data after", "GET", "/api/data", s="S3")
    # the confirmed user confirms in its own session (token-authenticated)
    email3, tok3 = register(t, "register c3", "a", "c3")
    r = t.r("POST /login c3 ?include_auth_token unconfirmed", "POST", "/login", s="c3",
            params={"include_auth_token": ""}, json_body={"email": email3, "password": "password123"})
    login(t, "session S4: login admin", "S4", ADMIN)
    t.r("session S4: GET /confirm/<c3 token> html", "GET", f"/confirm/{tok3}", s="S4", accept="html")
    t.r("session S4: GET / html after", "GET", "/", s="S4", accept="html")
    # POST /confirm/<token> (Flask-Security's route also accepts POST)
    email4, tok4 = register(t, "register c4", "a", "c4")
    t.r("POST /confirm/<c4 token>", "POST", f"/confirm/{tok4}", s="post", json_body={})
    t.r("POST /login c4 after POST /confirm/<token>", "POST", "/login", s="post4",
        json_body={"email": email4, "password": "password123"})


@scenario
def csrf(t):
    em, pw = USER
    t.r("anon POST /login garbage X-XSRF-TOKEN", "POST", "/login", s="g", csrf="garbage",
        json_body={"email": em, "password": pw})
    t.r("anon POST /register garbage header", "POST", "/register", s="g2", csrf="garbage", json_body={})
    t.r("anon POST /confirm garbage header", "POST", "/confirm", s="g3", csrf="garbage", json_body={"email": em})
    t.r("anon POST /api/data garbage header", "POST", "/api/data", s="g4", csrf="garbage", json_body={})
    t.r("anon POST /logout garbage header", "POST", "/logout", s="g5", csrf="garbage", json_body={})
    t.r("GET /login (a) anon", "GET", "/login", s="a")
    t0 = t.csrf.get("a")
    login(t, "login (a) with anon token", "a", USER)
    t1 = t.csrf.get("a")
    t.note("csrf token rotated on login", "compare token payload before/after login", csrf_raw(t0) != csrf_raw(t1))
    t.r("GET /login (a) logged in", "GET", "/login", s="a")
    t2 = t.csrf.get("a")
    t.note("csrf token changes on GET /login when logged in", "compare token payload", csrf_raw(t1) != csrf_raw(t2))
    t.r("POST /login stale pre-login CSRF while logged in", "POST", "/login", s="a", csrf=t0 or "none",
        json_body={"email": em, "password": pw})
    t.r("POST /login no CSRF while logged in", "POST", "/login", s="a", csrf=False, json_body={"email": em, "password": pw})
    t.r("POST /login garbage CSRF while logged in", "POST", "/login", s="a", csrf="garbage",
        json_body={"email": em, "password": pw})
    t.r("POST /login valid CSRF while logged in", "POST", "/login", s="a", json_body={"email": em, "password": pw})
    t.r("POST /login valid CSRF while logged in, wrong pw", "POST", "/login", s="a",
        json_body={"email": em, "password": "wrong"})
    t.r("POST /login valid CSRF while logged in, empty body", "POST", "/login", s="a", json_body={})
    login(t, "login (b)", "b", ADMIN)
    tb = t.csrf.get("b")
    t.r("POST /api/data with CSRF of another session", "POST", "/api/data", s="a", csrf=tb or "none", json_body={})
    good = t.csrf.get("a") or "none"
    for hname in ("X-XSRF-TOKEN", "X-CSRFToken", "X-CSRF-Token", "x-xsrf-token", "X-XSRF-Token"):
        t.r(f"POST /api/data header {hname}", "POST", "/api/data", s="a", csrf=False, headers={hname: good},
            json_body={})
    t.r("POST /api/data header X-CSRF-TOKEN-Foo (unknown name)", "POST", "/api/data", s="a", csrf=False,
        headers={"X-CSRF-TOKEN-FOO": good}, json_body={})
    t.r("POST /api/data no CSRF (session)", "POST", "/api/data", s="a", csrf=False, json_body={})
    t.r("POST /api/data garbage CSRF (session)", "POST", "/api/data", s="a", csrf="garbage", json_body={})
    t.r("POST /api/data empty CSRF header", "POST", "/api/data", s="a", csrf=False, headers={"X-XSRF-TOKEN": ""},
        json_body={})
    t.r("POST /api/data form field csrf_token", "POST", "/api/data", s="a", csrf=False,
        data={"csrf_token": good})
    t.r("POST /api/data form field csrf_token html", "POST", "/api/data", s="a", csrf=False, accept="html",
        data={"csrf_token": good})
    t.r("POST /api/data JSON body csrf_token (should not count)", "POST", "/api/data", s="a", csrf=False,
        json_body={"csrf_token": good})
    t.r("POST /api/data ?csrf_token= query", "POST", "/api/data", s="a", csrf=False, params={"csrf_token": good},
        json_body={})
    t.r("POST /api/data no CSRF html Accept, form body", "POST", "/api/data", s="a", csrf=False, accept="html",
        data={"x": "1"})
    t.r("POST /api/data tampered CSRF", "POST", "/api/data", s="a", csrf=tamper(good), json_body={})
    t.r("POST /api/data CSRF from XSRF cookie value", "POST", "/api/data", s="a", csrf=False,
        headers={"X-XSRF-TOKEN": t.cookie("a", "XSRF-TOKEN") or "none"}, json_body={})
    t.r("GET /api/data no CSRF (safe method)", "GET", "/api/data", s="a", csrf=False)
    t.r("PUT /api/data no CSRF", "PUT", "/api/data", s="a", csrf=False, json_body={})
    # token-authenticated: no CSRF
    r = login(t, "login ?include_auth_token (tok)", "tok", USER, params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["token"] = tok
    t.r("POST /api/data token header, no cookies, no CSRF", "POST", "/api/data", s="fresh1",
        headers={"X-Auth-Token": tok}, json_body={})
    t.r("POST /api/data token header + session cookie, no CSRF", "POST", "/api/data", s="a", csrf=False,
        headers={"X-Auth-Token": tok}, json_body={})
    t.r("POST /api/data token header + garbage CSRF", "POST", "/api/data", s="fresh2", csrf="garbage",
        headers={"X-Auth-Token": tok}, json_body={})
    t.r("POST /verify token header, no CSRF", "POST", "/verify", s="fresh3", headers={"X-Auth-Token": tok},
        json_body={"password": pw})
    # CSRF token from before logout
    old = t.csrf.get("a")
    t.r("POST /logout (a)", "POST", "/logout", s="a", json_body={})
    login(t, "re-login (a)", "a", USER)
    t.r("POST /api/data with pre-logout CSRF", "POST", "/api/data", s="a", csrf=old or "none", json_body={})
    t.r("POST /api/data with current CSRF", "POST", "/api/data", s="a", json_body={})
    # cookie CSRF without the session cookie
    xs = t.cookie("a", "XSRF-TOKEN")
    t.drop_cookie("a", "session")
    t.r("POST /api/data XSRF only (session cookie dropped)", "POST", "/api/data", s="a", json_body={})
    if xs is None:
        t.note("XSRF-TOKEN cookie in jar", "-", "missing")


@scenario
def token_auth(t):
    r = login(t, "login user ?include_auth_token", "tok", USER, params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["tok_user"] = tok
    r = login(t, "login admin ?include_auth_token", "tokA", ADMIN, params={"include_auth_token": ""})
    tokA = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["tok_admin"] = tokA
    mk = ("message",)
    t.r("GET /api/protected X-Auth-Token", "GET", "/api/protected", s="n1", headers={"X-Auth-Token": tok}, mask_keys=mk)
    t.r("GET /api/protected ?auth_token=", "GET", "/api/protected", s="n2", params={"auth_token": tok}, mask_keys=mk)
    t.r("GET /api/protected Authentication-Token header (FS default name)", "GET", "/api/protected", s="n2b",
        headers={"Authentication-Token": tok}, mask_keys=mk)
    t.r("GET /api/protected Authorization: Bearer", "GET", "/api/protected", s="n3",
        headers={"Authorization": "Bearer " + tok}, mask_keys=mk)
    t.r("GET /api/protected JSON body auth_token", "GET", "/api/protected", s="n3b", json_body={"auth_token": tok},
        mask_keys=mk)
    t.r("POST /api/data JSON body auth_token", "POST", "/api/data", s="n4", json_body={"auth_token": tok})
    t.r("POST /api/data form auth_token", "POST", "/api/data", s="n5", data={"auth_token": tok})
    t.r("GET /api/data JSON body auth_token", "GET", "/api/data", s="n6", json_body={"auth_token": tok})
    t.r("POST /api/data JSON body auth_token non-string", "POST", "/api/data", s="n6b", json_body={"auth_token": 5})
    t.r("GET / X-Auth-Token html", "GET", "/", s="n7", accept="html", headers={"X-Auth-Token": tok})
    t.r("GET /user-data X-Auth-Token", "GET", "/user-data", s="n8", accept="html", headers={"X-Auth-Token": tok})
    t.r("GET /admin user token json", "GET", "/admin", s="n9", headers={"X-Auth-Token": tok})
    t.r("GET /admin user token html", "GET", "/admin", s="n9", accept="html", headers={"X-Auth-Token": tok})
    t.r("GET /admin admin token", "GET", "/admin", s="n10", accept="html", headers={"X-Auth-Token": tokA})
    t.r("GET /api/protected admin token", "GET", "/api/protected", s="n10", headers={"X-Auth-Token": tokA},
        mask_keys=mk)
    t.r("GET /api/protected tampered token", "GET", "/api/protected", s="n11", headers={"X-Auth-Token": tamper(tok)})
    t.r("GET /api/protected truncated token", "GET", "/api/protected", s="n12", headers={"X-Auth-Token": tok[:-5]})
    t.r("GET /api/protected garbage token", "GET", "/api/protected", s="n13", headers={"X-Auth-Token": "abc"})
    t.r("GET /api/protected empty token header", "GET", "/api/protected", s="n14", headers={"X-Auth-Token": ""})
    t.r("GET /api/protected garbage token html", "GET", "/api/protected", s="n15", accept="html",
        headers={"X-Auth-Token": "abc"})
    t.r("GET / garbage token html", "GET", "/", s="n15", accept="html", headers={"X-Auth-Token": "abc"})
    expired = forge_fs_token(tok, t.secret_key, age_seconds=3600)
    fresh = forge_fs_token(tok, t.secret_key, age_seconds=0)
    ghost = forge_fs_token(tok, t.secret_key, age_seconds=0, uid="0" * 32)
    t.note("token decodes as itsdangerous FS token", "payload base64 JSON", expired is not None)
    if expired:
        t.r("GET /api/protected re-signed token 1h old (expired)", "GET", "/api/protected", s="n16",
            headers={"X-Auth-Token": expired})
        t.r("GET /api/protected re-signed token now (forged w/ default SECRET_KEY)", "GET", "/api/protected",
            s="n17", headers={"X-Auth-Token": fresh}, mask_keys=mk)
        t.r("GET /api/protected re-signed token unknown uid", "GET", "/api/protected", s="n18",
            headers={"X-Auth-Token": ghost})
    # session + token interplay
    login(t, "session admin", "sa", ADMIN)
    t.r("GET /api/protected admin session + user token", "GET", "/api/protected", s="sa",
        headers={"X-Auth-Token": tok}, mask_keys=mk)
    t.r("GET /api/data admin session + user token", "GET", "/api/data", s="sa", headers={"X-Auth-Token": tok})
    t.r("GET /api/protected session only", "GET", "/api/protected", s="sa")
    t.r("GET /api/protected session only html", "GET", "/api/protected", s="sa", accept="html")
    t.r("GET /api/protected session + garbage token", "GET", "/api/protected", s="sa",
        headers={"X-Auth-Token": "abc"})
    t.r("GET /api/data session + garbage token", "GET", "/api/data", s="sa", headers={"X-Auth-Token": "abc"})
    t.r("GET /login with token only", "GET", "/login", s="n19", headers={"X-Auth-Token": tok})
    t.r("POST /login with token only (already logged in?)", "POST", "/login", s="n20",
        headers={"X-Auth-Token": tok}, json_body={"email": USER[0], "password": USER[1]})
    t.r("POST /logout with token only", "POST", "/logout", s="n21", headers={"X-Auth-Token": tok}, json_body={})
    t.r("GET /api/protected token still valid after token-logout", "GET", "/api/protected", s="n22",
        headers={"X-Auth-Token": tok}, mask_keys=mk)
    t.r("POST /logout issuing session", "POST", "/logout", s="tok", json_body={})
    t.r("GET /api/protected token after issuing-session logout", "GET", "/api/protected", s="n23",
        headers={"X-Auth-Token": tok}, mask_keys=mk)
    t.r("GET /api/protected token: disabled user token?", "GET", "/api/protected", s="n24",
        params={"auth_token": tok, "x": "1"}, mask_keys=mk)
    t.r("GET /api/data token response sets cookies?", "GET", "/api/data", s="n25", headers={"X-Auth-Token": tok})
    t.r("GET /api/data same fresh session, no token (did token create a session?)", "GET", "/api/data", s="n25")


@scenario
def basic_auth(t):
    ba = ("user@example.com", "user123")
    t.r("GET / basic json", "GET", "/", s="a", auth=ba)
    t.r("GET / basic html", "GET", "/", s="a", accept="html", auth=ba)
    t.r("GET /api/data basic", "GET", "/api/data", s="a", auth=ba)
    t.r("POST /api/data basic", "POST", "/api/data", s="a", auth=ba, json_body={})
    t.r("GET /api/protected basic", "GET", "/api/protected", s="a", auth=ba)
    t.r("GET /user-data basic json", "GET", "/user-data", s="a", auth=ba)
    t.r("GET /admin basic admin json", "GET", "/admin", s="a", auth=("admin@example.com", "admin123"))
    t.r("GET / basic wrong password", "GET", "/", s="a", auth=("user@example.com", "nope"))
    t.r("GET /verify basic", "GET", "/verify", s="a", auth=ba)
    t.r("POST /login basic only", "POST", "/login", s="a", auth=ba, json_body={})
    t.r("GET / malformed Authorization", "GET", "/", s="a", headers={"Authorization": "Basic !!!"})


@scenario
def unauth_redirects(t):
    for path in ["/", "/admin", "/user-data", "/api/data", "/api/protected", "/verify"]:
        t.r(f"GET {path} anon html", "GET", path, s="a", accept="html")
        t.r(f"GET {path} anon json", "GET", path, s="a")
    queries = [
        ("x=1&y=2", "/user-data?x=1&y=2"),
        ("a=b%3Dc (= in value)", "/user-data?a=b%3Dc"),
        ("q=a%20b (space)", "/user-data?q=a%20b"),
        ("q=a+b (plus)", "/user-data?q=a+b"),
        ("q=%C3%A9 (unicode)", "/user-data?q=%C3%A9"),
        ("q=%26 (& in value)", "/user-data?q=%26&z=1"),
        ("next=/x (nested next)", "/user-data?next=/x"),
        ("empty query ?", "/user-data?"),
        ("key only ?x", "/user-data?x"),
        ("q=%2F%3F%23 (reserved)", "/user-data?q=%2F%3F%23"),
        ("repeated keys a=1&a=2", "/user-data?a=1&a=2"),
        ("raw apostrophe/quote", "/user-data?q='%22"),
    ]
    for name, path in queries:
        t.r(f"GET /user-data?{name} anon html", "GET", path, s="a", accept="html")
    t.r("GET /api/data?x=1 Accept */*", "GET", "/api/data?x=1", s="a", accept="any")
    t.r("GET /api/data?x=1 no Accept", "GET", "/api/data?x=1", s="a", accept=None)
    t.r("GET /%C3%A9 unicode path (404?) html", "GET", "/%C3%A9", s="a", accept="html")
    for i, acc in enumerate([
        "application/json;q=0.5, text/html",
        "text/html;q=0.5, application/json",
        "application/json, text/html",
        "text/html, application/json",
        "application/*",
        "text/*",
        "*/*;q=0.1, application/json",
        "application/xml",
        "image/png",
        "application/vnd.api+json",
        "Application/JSON",
    ]):
        t.r(f"GET / anon Accept: {acc}", "GET", "/", s="a", accept=acc)
    t.r("GET / anon html Accept + Content-Type json", "GET", "/", s="a", accept="html",
        headers={"Content-Type": "application/json"})
    t.r("GET / anon X-Requested-With XMLHttpRequest", "GET", "/", s="a", accept="any",
        headers={"X-Requested-With": "XMLHttpRequest"})
    t.r("POST /api/data anon html form", "POST", "/api/data", s="a", accept="html", data={"x": "1"})
    t.r("POST /api/data anon json", "POST", "/api/data", s="a", json_body={})


@scenario
def authorization(t):
    login(t, "login user", "u", USER)
    t.r("GET / user html", "GET", "/", s="u", accept="html")
    t.r("GET / user json", "GET", "/", s="u")
    t.r("GET /user-data user", "GET", "/user-data", s="u", accept="html")
    t.r("GET /admin user json", "GET", "/admin", s="u")
    t.r("GET /admin user html", "GET", "/admin", s="u", accept="html")
    t.r("GET /admin user Accept */*", "GET", "/admin", s="u", accept="any")
    t.r("GET /api/data user", "GET", "/api/data", s="u")
    t.r("POST /api/data user", "POST", "/api/data", s="u", json_body={})
    t.r("GET /api/protected user session", "GET", "/api/protected", s="u")
    login(t, "login admin", "ad", ADMIN)
    t.r("GET /admin admin html", "GET", "/admin", s="ad", accept="html")
    t.r("GET /admin admin json", "GET", "/admin", s="ad")
    t.r("GET /user-data admin", "GET", "/user-data", s="ad", accept="html")
    t.r("HEAD /admin user", "HEAD", "/admin", s="u")
    t.r("HEAD / user", "HEAD", "/", s="u", accept="html")


@scenario
def not_found_and_methods(t):
    for name, method, path, acc in [
        ("GET /nope json", "GET", "/nope", "json"),
        ("GET /nope html", "GET", "/nope", "html"),
        ("POST /nope json", "POST", "/nope", "json"),
        ("GET /login/ trailing slash", "GET", "/login/", "json"),
        ("GET /api/data/ trailing slash", "GET", "/api/data/", "json"),
        ("GET /admin/ trailing slash html", "GET", "/admin/", "html"),
        ("GET /confirm/ empty token", "GET", "/confirm/", "json"),
        ("GET /confirm/a/b", "GET", "/confirm/a/b", "json"),
        ("GET //login double slash", "GET", "//login", "json"),
        ("GET /LOGIN case", "GET", "/LOGIN", "json"),
        ("PUT /login", "PUT", "/login", "json"),
        ("DELETE /login", "DELETE", "/login", "json"),
        ("PATCH /logout", "PATCH", "/logout", "json"),
        ("DELETE /api/data anon", "DELETE", "/api/data", "json"),
        ("POST / anon", "POST", "/", "json"),
        ("POST /api/protected anon", "POST", "/api/protected", "json"),
        ("PUT /register", "PUT", "/register", "json"),
        ("PUT /confirm", "PUT", "/confirm", "json"),
        ("PUT /verify", "PUT", "/verify", "json"),
        ("HEAD / anon json", "HEAD", "/", "json"),
        ("HEAD / anon html", "HEAD", "/", "html"),
        ("HEAD /api/data anon", "HEAD", "/api/data", "json"),
        ("HEAD /confirm", "HEAD", "/confirm", "json"),
        ("OPTIONS /", "OPTIONS", "/", "json"),
        ("OPTIONS /api/data", "OPTIONS", "/api/data", "json"),
        ("OPTIONS /logout", "OPTIONS", "/logout", "json"),
        ("OPTIONS /register", "OPTIONS", "/register", "json"),
        ("OPTIONS /verify", "OPTIONS", "/verify", "json"),
        ("OPTIONS /confirm/x", "OPTIONS", "/confirm/x", "json"),
        ("OPTIONS /nope", "OPTIONS", "/nope", "json"),
        ("OPTIONS * /login html", "OPTIONS", "/login", "html"),
        ("GET /favicon.ico", "GET", "/favicon.ico", "any"),
    ]:
        kw = {}
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            kw["json_body"] = {}
        t.r(name, method, path, s="a", accept=acc, **kw)
    login(t, "login user", "u", USER)
    t.r("POST / logged in", "POST", "/", s="u", json_body={})
    t.r("DELETE /api/data logged in", "DELETE", "/api/data", s="u", json_body={})
    t.r("GET /nope logged in json", "GET", "/nope", s="u")


@scenario
def cookies_and_session(t):
    r = t.r("GET /login fresh", "GET", "/login", s="a")
    d = jget(r, "response", "csrf_token")
    t.note("XSRF-TOKEN cookie == response.csrf_token (GET /login)", "compare",
           d is not None and d == t.cookie("a", "XSRF-TOKEN"))
    r = login(t, "login", "a", USER)
    d = jget(r, "response", "csrf_token")
    t.note("XSRF-TOKEN cookie == response.csrf_token (login)", "compare",
           d is not None and d == t.cookie("a", "XSRF-TOKEN"))
    t.r("GET /api/data (a)", "GET", "/api/data", s="a")
    t.r("GET /verify (a)", "GET", "/verify", s="a")
    t.r("GET / html (a)", "GET", "/", s="a", accept="html")
    t.r("POST /logout (a)", "POST", "/logout", s="a", json_body={})
    t.note("jar after logout", "cookie names left in jar",
           sorted({c.name for c in t.s("a").cookies}))
    t.r("GET /login after logout", "GET", "/login", s="a")
    t.r("GET /api/data anon json (cookies?)", "GET", "/api/data", s="z")
    t.r("GET /register anon (cookies?)", "GET", "/register", s="z2")
    t.r("GET /confirm anon (cookies?)", "GET", "/confirm", s="z3")
    t.r("POST /login failed (cookies?)", "POST", "/login", s="z4", json_body={"email": USER[0], "password": "no"})
    t.set_cookie("bad", "session", "garbage")
    t.r("GET /api/data garbage session cookie", "GET", "/api/data", s="bad")
    t.r("GET /login garbage session cookie", "GET", "/login", s="bad")
    t.r("POST /login garbage session cookie", "POST", "/login", s="bad",
        json_body={"email": USER[0], "password": USER[1]})


# ------------------------------------------------------- account lifecycle
PW = "password123"


def mail_token(t, kind):
    """Token of the first ``/<kind>/<token>`` link in the mails of the last step that collected mails."""
    for m in t.vars.get("_last_mails", []):
        for body in (m.get("text") or "", m.get("html") or ""):
            mm = re.search(r"https?://[^\s\"'<>]+/" + re.escape(kind) + r"/([A-Za-z0-9_\-\.]+)", body)
            if mm:
                return mm.group(1)
    return None


def keep_token(t, name, tok):
    """Remember a token (masked as <ctok_name> in descriptions); a placeholder when the mail had none."""
    t.vars["ctok_" + name] = tok or f"missing-token-{name}"
    return t.vars["ctok_" + name]


def new_user(t, step, label, password=PW, confirm=True):
    """Register (with a username) and, unless confirm=False, confirm a fresh user; returns its e-mail."""
    s = "setup_" + label
    email, tok = register(t, f"{step}: register {label}", s, label, password=password)
    if confirm:
        t.r(f"{step}: confirm {label}", "GET", f"/confirm/{tok}", s=s)
    return email


def login_as(t, step, s, email, password=PW, **kw):
    return t.r(step, "POST", "/login", s=s, json_body={"email": email, "password": password}, **kw)


@scenario
def reset_request(t):
    """POST /reset (forgot password): validation, unknown/unconfirmed/disabled users, logged in, forms."""
    t.mail_also = {USER[0], DISABLED[0]}
    t.r("GET /reset anon json", "GET", "/reset", s="a")
    t.r("GET /reset anon html", "GET", "/reset", s="a", accept="html")
    for i, (name, body) in enumerate([
        ("{} missing email", {}),
        ("empty email", {"email": ""}),
        ("malformed email", {"email": "not-an-email"}),
        ("email without tld", {"email": "a@b"}),
        ("email list", {"email": [USER[0]]}),
        ("email int", {"email": 5}),
        ("email null", {"email": None}),
        ("unknown email", {"email": "nosuch@example.com"}),
        ("username instead of email", {"email": "user"}),
        ("username key", {"username": "user"}),
        ("disabled user", {"email": DISABLED[0]}),
    ]):
        t.r(f"POST /reset {name}", "POST", "/reset", s=f"v{i}", json_body=body, mail="check")
    t.r("POST /reset invalid JSON", "POST", "/reset", s="raw", raw="{bad json")
    t.r("POST /reset seeded user", "POST", "/reset", s="seed", json_body={"email": USER[0]}, mail="expect")
    t.r("POST /reset seeded user uppercase", "POST", "/reset", s="seed2", json_body={"email": USER[0].upper()},
        mail="expect")
    t.r("POST /reset seeded user with spaces", "POST", "/reset", s="seed3", json_body={"email": " " + USER[0] + " "},
        mail="check")
    t.r("POST /reset seeded user ?include_auth_token", "POST", "/reset", s="seed4", params={"include_auth_token": ""},
        json_body={"email": USER[0]}, mail="expect")
    # unconfirmed
    unc = new_user(t, "setup", "rqunc", confirm=False)
    t.r("POST /reset unconfirmed user", "POST", "/reset", s="u1", json_body={"email": unc}, mail="check")
    t.r("POST /reset unconfirmed user html form", "POST", "/reset", s="u2", accept="html",
        data={"email": unc}, mail="check")
    # fresh confirmed user
    em = new_user(t, "setup", "rqok")
    t.r("POST /reset fresh user uppercase", "POST", "/reset", s="f1", json_body={"email": em.upper()}, mail="expect")
    t.r("POST /reset fresh user", "POST", "/reset", s="f2", json_body={"email": em}, mail="expect")
    # logged in
    login_as(t, "login fresh user", "li", em)
    t.r("POST /reset logged in, own email (csrf ok)", "POST", "/reset", s="li", json_body={"email": em},
        mail="expect")
    t.r("POST /reset logged in, no CSRF", "POST", "/reset", s="li", csrf=False, json_body={"email": em},
        mail="check")
    t.r("POST /reset logged in, other user's email", "POST", "/reset", s="li", json_body={"email": USER[0]},
        mail="check")
    t.r("POST /reset logged in, {}", "POST", "/reset", s="li", json_body={}, mail="check")
    t.r("GET /reset logged in json", "GET", "/reset", s="li")
    t.r("GET /reset logged in html", "GET", "/reset", s="li", accept="html")
    t.r("GET /api/data still logged in after /reset", "GET", "/api/data", s="li")
    # forms
    t.r("POST /reset form html success", "POST", "/reset", s="h1", accept="html", data={"email": em}, mail="expect")
    t.r("POST /reset form html unknown", "POST", "/reset", s="h2", accept="html",
        data={"email": "nosuch@example.com"}, mail="check")
    t.r("POST /reset form html malformed", "POST", "/reset", s="h3", accept="html", data={"email": "bad"})
    t.r("POST /reset form html empty", "POST", "/reset", s="h4", accept="html", data={"email": ""})
    t.r("POST /reset form body Accept json", "POST", "/reset", s="h5", data={"email": em}, mail="expect")
    t.r("POST /reset form html logged in with csrf_token", "POST", "/reset", s="li", accept="html", csrf=False,
        data={"email": em, "csrf_token": t.csrf.get("li") or ""}, mail="expect")
    t.r("POST /reset form html disabled", "POST", "/reset", s="h6", accept="html", data={"email": DISABLED[0]},
        mail="check")
    t.r("POST /reset token-authenticated", "POST", "/reset", s="tk",
        headers={"X-Auth-Token": "garbage-token"}, json_body={"email": em}, mail="check")


def request_reset(t, step, email, name):
    """POST /reset for ``email`` (one second after the previous one: FS tokens carry a timestamp with
    one-second resolution, two requests in the same second give the same token) and keep its token."""
    time.sleep(1.1)
    t.r(step, "POST", "/reset", s="req", json_body={"email": email}, mail="expect")
    return keep_token(t, name, mail_token(t, "reset"))


@scenario
def reset_token(t):
    """GET/POST /reset/<token>: valid, invalid, used, superseded, validation, forms, logged in."""
    em = new_user(t, "setup", "rta")
    tok1 = request_reset(t, "POST /reset rta (token 1)", em, "reset1")
    t.r("GET /reset/<garbage> json", "GET", "/reset/not-a-real-token", s="g")
    t.r("GET /reset/<garbage> html", "GET", "/reset/not-a-real-token", s="g", accept="html")
    t.r("GET /reset/<tampered> json", "GET", "/reset/" + tamper(tok1), s="g")
    t.r("GET /reset/<garbage with dots>", "GET", "/reset/abc.def.ghi", s="g")
    t.r("GET /reset/<token1> json", "GET", f"/reset/{tok1}", s="g")
    t.r("GET /reset/<token1> html", "GET", f"/reset/{tok1}", s="g", accept="html")
    t.r("GET /reset/<token1> Accept */*", "GET", f"/reset/{tok1}", s="g", accept="any")
    t.r("POST /reset/<garbage> json", "POST", "/reset/not-a-real-token", s="p",
        json_body={"password": "newpass123", "password_confirm": "newpass123"})
    t.r("POST /reset/<garbage> form html", "POST", "/reset/not-a-real-token", s="p", accept="html",
        data={"password": "newpass123", "password_confirm": "newpass123"})
    t.r("POST /reset/<tampered> json", "POST", "/reset/" + tamper(tok1), s="p",
        json_body={"password": "newpass123", "password_confirm": "newpass123"})
    t.r("POST /reset/<garbage> json invalid body", "POST", "/reset/not-a-real-token", s="p", json_body={})
    # validation failures (must not consume the token)
    for i, (name, body) in enumerate([
        ("{} missing fields", {}),
        ("password only", {"password": "newpass123"}),
        ("password_confirm only", {"password_confirm": "newpass123"}),
        ("mismatch", {"password": "newpass123", "password_confirm": "newpass124"}),
        ("short", {"password": "abc", "password_confirm": "abc"}),
        ("blank", {"password": "", "password_confirm": ""}),
        ("whitespace only", {"password": "        ", "password_confirm": "        "}),
        ("password int", {"password": 12345678, "password_confirm": 12345678}),
        ("password null", {"password": None, "password_confirm": None}),
        ("password_confirm int", {"password": "12345678", "password_confirm": 12345678}),
        ("129 chars", {"password": "x" * 129, "password_confirm": "x" * 129}),
    ]):
        t.r(f"POST /reset/<token1> {name}", "POST", f"/reset/{tok1}", s=f"v{i}", json_body=body, mail="check")
    t.r("POST /reset/<token1> invalid JSON", "POST", f"/reset/{tok1}", s="raw", raw="{bad")
    t.r("POST /reset/<token1> form html mismatch", "POST", f"/reset/{tok1}", s="h", accept="html",
        data={"password": "newpass123", "password_confirm": "other12345"})
    t.r("POST /reset/<token1> form html short", "POST", f"/reset/{tok1}", s="h", accept="html",
        data={"password": "abc", "password_confirm": "abc"})
    t.r("GET /reset/<token1> still valid after failed POSTs", "GET", f"/reset/{tok1}", s="g")
    # cases one app may accept: each on its own, fresh token
    for i, (name, body) in enumerate([
        ("password list", {"password": ["listpass123"], "password_confirm": ["listpass123"]}),
        ("same as current password", {"password": PW, "password_confirm": PW}),
        ("password = email", {"password": em, "password_confirm": em}),
    ]):
        tk = request_reset(t, f"POST /reset rta (token for: {name})", em, f"resetr{i}")
        t.r(f"POST /reset/<fresh token> {name}", "POST", f"/reset/{tk}", s=f"r{i}", json_body=body,
            mail="check")
    # success, then used / superseded tokens
    tok2 = request_reset(t, "POST /reset rta (token 2, to be superseded)", em, "reset2")
    tokv = request_reset(t, "POST /reset rta (token V)", em, "resetv")
    t.r("POST /reset/<tokenV> valid", "POST", f"/reset/{tokv}", s="ok",
        json_body={"password": "newpass123", "password_confirm": "newpass123"}, mail="expect")
    t.r("GET /api/data after reset (no auto-login)", "GET", "/api/data", s="ok")
    t.r("POST /reset/<tokenV> used", "POST", f"/reset/{tokv}", s="ok",
        json_body={"password": "newpass456", "password_confirm": "newpass456"}, mail="check")
    t.r("GET /reset/<tokenV> used", "GET", f"/reset/{tokv}", s="ok")
    t.r("GET /reset/<tokenV> used html", "GET", f"/reset/{tokv}", s="ok", accept="html")
    t.r("GET /reset/<token2> superseded (password changed)", "GET", f"/reset/{tok2}", s="ok")
    t.r("POST /reset/<token2> superseded", "POST", f"/reset/{tok2}", s="ok",
        json_body={"password": "newpass456", "password_confirm": "newpass456"}, mail="check")
    t.r("GET /reset/<token1> superseded", "GET", f"/reset/{tok1}", s="ok")
    login_as(t, "POST /login rta old password", "l1", em, PW)
    login_as(t, "POST /login rta new password", "l2", em, "newpass123")
    # html form success
    tok3 = request_reset(t, "POST /reset rta (token 3)", em, "reset3")
    t.r("POST /reset/<token3> form html valid", "POST", f"/reset/{tok3}", s="h3", accept="html",
        data={"password": "newpass789", "password_confirm": "newpass789"}, mail="expect")
    t.r("GET /api/data after html reset", "GET", "/api/data", s="h3")
    t.r("POST /reset/<token3> form html used", "POST", f"/reset/{tok3}", s="h3", accept="html",
        data={"password": "newpass000", "password_confirm": "newpass000"})
    # reset while another user is logged in
    login(t, "session S: login user", "S", USER)
    tok4 = request_reset(t, "POST /reset rta (token 4)", em, "reset4")
    t.r("session S: GET /reset/<token4>", "GET", f"/reset/{tok4}", s="S")
    t.r("session S: POST /reset/<token4> no CSRF", "POST", f"/reset/{tok4}", s="S", csrf=False,
        json_body={"password": "newpass999", "password_confirm": "newpass999"}, mail="check")
    t.r("session S: POST /reset/<token4> with CSRF ?include_auth_token", "POST", f"/reset/{tok4}", s="S",
        params={"include_auth_token": ""},
        json_body={"password": "newpass999", "password_confirm": "newpass999"}, mail="check")
    t.r("session S: GET /api/data after", "GET", "/api/data", s="S")
    login_as(t, "POST /login rta after token4", "l3", em, "newpass999")
    # sessions and auth tokens of the user after a reset
    em2 = new_user(t, "setup", "rtb")
    login_as(t, "session B: login rtb", "B", em2)
    r = login_as(t, "login rtb ?include_auth_token", "Bt", em2, params={"include_auth_token": ""})
    t.vars["token"] = jget(r, "response", "user", "authentication_token") or "missing-token"
    tok5 = request_reset(t, "POST /reset rtb", em2, "reset5")
    t.r("POST /reset/<token5> valid", "POST", f"/reset/{tok5}", s="x",
        json_body={"password": "newpass123", "password_confirm": "newpass123"}, mail="expect")
    t.r("session B: GET /api/data after password reset", "GET", "/api/data", s="B")
    t.r("auth token issued before reset: GET /api/protected", "GET", "/api/protected", s="y",
        headers={"X-Auth-Token": t.vars["token"]}, mask_keys=("message", "user_id"))
    t.r("PUT /reset/<garbage>", "PUT", "/reset/x", s="m", json_body={})


@scenario
def change_password(t):
    """GET/POST /change: validation, success, include_auth_token, token auth, sessions, HTML form."""
    t.r("GET /change anon json", "GET", "/change", s="anon")
    t.r("GET /change anon html", "GET", "/change", s="anon", accept="html")
    t.r("POST /change anon json", "POST", "/change", s="anon",
        json_body={"password": PW, "new_password": "newpass123", "new_password_confirm": "newpass123"})
    t.r("POST /change anon html form", "POST", "/change", s="anon", accept="html",
        data={"password": PW, "new_password": "newpass123", "new_password_confirm": "newpass123"})
    em = new_user(t, "setup", "cpa")
    cur = PW
    login_as(t, "login cpa", "a", em)
    t.r("GET /change json", "GET", "/change", s="a")
    t.r("GET /change html", "GET", "/change", s="a", accept="html")
    for i, (name, body) in enumerate([
        ("{} missing fields", {}),
        ("missing current password", {"new_password": "newpass123", "new_password_confirm": "newpass123"}),
        ("missing new_password", {"password": cur, "new_password_confirm": "newpass123"}),
        ("missing new_password_confirm", {"password": cur, "new_password": "newpass123"}),
        ("wrong current password", {"password": "wrongpw1", "new_password": "newpass123",
                                    "new_password_confirm": "newpass123"}),
        ("same as old", {"password": cur, "new_password": cur, "new_password_confirm": cur}),
        ("short new password", {"password": cur, "new_password": "abc", "new_password_confirm": "abc"}),
        ("mismatch", {"password": cur, "new_password": "newpass123", "new_password_confirm": "newpass124"}),
        ("empty strings", {"password": "", "new_password": "", "new_password_confirm": ""}),
        ("whitespace-only new", {"password": cur, "new_password": "        ", "new_password_confirm": "        "}),
        ("current password int", {"password": 12345678, "new_password": "newpass123",
                                  "new_password_confirm": "newpass123"}),
        ("new password int", {"password": cur, "new_password": 12345678, "new_password_confirm": 12345678}),
        ("wrong current + short new", {"password": "wrongpw1", "new_password": "abc", "new_password_confirm": "abc"}),
        ("wrong current + same as old", {"password": "wrongpw1", "new_password": cur, "new_password_confirm": cur}),
    ]):
        t.r(f"POST /change {name}", "POST", "/change", s="a", json_body=body, mail="check")
    t.r("POST /change invalid JSON", "POST", "/change", s="a", raw="{bad")
    t.r("POST /change no CSRF", "POST", "/change", s="a", csrf=False,
        json_body={"password": cur, "new_password": "newpass123", "new_password_confirm": "newpass123"})
    t.r("POST /change garbage CSRF", "POST", "/change", s="a", csrf="garbage",
        json_body={"password": cur, "new_password": "newpass123", "new_password_confirm": "newpass123"})
    login_as(t, "session B: login cpa (other client)", "B", em)
    pre = t.csrf.get("a")
    t.r("POST /change valid", "POST", "/change", s="a",
        json_body={"password": cur, "new_password": "newpass123", "new_password_confirm": "newpass123"},
        mail="expect")
    cur = "newpass123"
    t.note("CSRF token payload changed by the password change", "compare before/after",
           csrf_raw(pre) != csrf_raw(t.csrf.get("a")))
    t.r("GET /api/data same session after change", "GET", "/api/data", s="a")
    t.r("POST /api/data with the pre-change CSRF token", "POST", "/api/data", s="a", csrf=pre or "none",
        json_body={})
    t.r("POST /api/data with the XSRF-TOKEN cookie value after change", "POST", "/api/data", s="a", csrf=False,
        headers={"X-XSRF-TOKEN": t.cookie("a", "XSRF-TOKEN") or "none"}, json_body={})
    t.r("session B: GET /api/data after change in another session", "GET", "/api/data", s="B")
    login_as(t, "POST /login old password after change", "l1", em, PW)
    login_as(t, "POST /login new password after change", "l2", em, cur)
    t.r("POST /change valid ?include_auth_token", "POST", "/change", s="a", params={"include_auth_token": ""},
        json_body={"password": cur, "new_password": "newpass456", "new_password_confirm": "newpass456"},
        mail="expect")
    cur = "newpass456"
    t.r("POST /change valid body include_auth_token", "POST", "/change", s="a",
        json_body={"password": cur, "new_password": "newpass457", "new_password_confirm": "newpass457",
                   "include_auth_token": True}, mail="check")
    # which password is current now depends on the step above: ask the app
    r = login_as(t, "POST /login with newpass457", "l3", em, "newpass457")
    if r is not None and r.status_code == 200:
        cur = "newpass457"
    # token-authenticated (no session cookie, no CSRF)
    r = login_as(t, "login cpa ?include_auth_token", "tk", em, cur, params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["token"] = tok
    t.r("GET /change token-authenticated", "GET", "/change", s="t1", headers={"X-Auth-Token": tok})
    t.r("POST /change token-authenticated wrong current, no CSRF", "POST", "/change", s="t2",
        headers={"X-Auth-Token": tok},
        json_body={"password": "wrongpw1", "new_password": "tokpass123", "new_password_confirm": "tokpass123"})
    t.r("POST /change token-authenticated valid, no CSRF", "POST", "/change", s="t3",
        headers={"X-Auth-Token": tok},
        json_body={"password": cur, "new_password": "tokpass123", "new_password_confirm": "tokpass123"},
        mail="check")
    r = login_as(t, "POST /login with tokpass123", "l4", em, "tokpass123")
    if r is not None and r.status_code == 200:
        cur = "tokpass123"
    t.r("GET /api/protected old token after password change", "GET", "/api/protected", s="t4",
        headers={"X-Auth-Token": tok}, mask_keys=("message", "user_id"))
    # HTML form
    login_as(t, "login cpa (html session)", "h", em, cur)
    t.r("GET /change html (h)", "GET", "/change", s="h", accept="html")
    t.r("POST /change form html wrong current", "POST", "/change", s="h", accept="html", csrf=False,
        data={"password": "wrongpw1", "new_password": "formpass123", "new_password_confirm": "formpass123",
              "csrf_token": t.csrf.get("h") or ""})
    t.r("POST /change form html mismatch", "POST", "/change", s="h", accept="html", csrf=False,
        data={"password": cur, "new_password": "formpass123", "new_password_confirm": "formpass124",
              "csrf_token": t.csrf.get("h") or ""})
    t.r("POST /change form html no csrf_token", "POST", "/change", s="h", accept="html", csrf=False,
        data={"password": cur, "new_password": "formpass123", "new_password_confirm": "formpass123"})
    t.r("POST /change form html valid", "POST", "/change", s="h", accept="html", csrf=False,
        data={"password": cur, "new_password": "formpass123", "new_password_confirm": "formpass123",
              "csrf_token": t.csrf.get("h") or ""}, mail="check")
    t.r("GET / html after form change", "GET", "/", s="h", accept="html")
    t.r("POST /change form html ?next=/user-data", "POST", "/change", s="h", accept="html", csrf=False,
        params={"next": "/user-data"},
        data={"password": "formpass123", "new_password": "formpass456", "new_password_confirm": "formpass456",
              "csrf_token": t.csrf.get("h") or ""}, mail="check")
    t.r("PUT /change", "PUT", "/change", s="h", json_body={})
    # cases one app may accept: each on a user of its own
    for i, (name, fn) in enumerate([
        ("new password list", lambda e: {"password": PW, "new_password": ["listpass123"],
                                         "new_password_confirm": ["listpass123"]}),
        ("new password = email", lambda e: {"password": PW, "new_password": e, "new_password_confirm": e}),
        ("new password = email uppercase", lambda e: {"password": PW, "new_password": e.upper(),
                                                      "new_password_confirm": e.upper()}),
    ]):
        label = f"cpr{i}"
        e = new_user(t, "setup", label)
        login_as(t, f"login {label}", label, e)
        t.r(f"POST /change {name}", "POST", "/change", s=label, json_body=fn(e), mail="check")


@scenario
def change_email(t):
    """GET/POST /change-email and GET /change-email/<token>."""
    t.r("GET /change-email anon json", "GET", "/change-email", s="anon")
    t.r("GET /change-email anon html", "GET", "/change-email", s="anon", accept="html")
    t.r("POST /change-email anon json", "POST", "/change-email", s="anon", json_body={"email": t.email("ceanon")},
        mail="check")
    em = new_user(t, "setup", "cea")
    login_as(t, "login cea", "a", em)
    t.r("GET /change-email json", "GET", "/change-email", s="a")
    t.r("GET /change-email html", "GET", "/change-email", s="a", accept="html")
    for i, (name, body) in enumerate([
        ("{} missing", {}),
        ("empty email", {"email": ""}),
        ("invalid email", {"email": "not-an-email"}),
        ("email without tld", {"email": "a@b"}),
        ("email list", {"email": [t.email("celist")]}),
        ("email int", {"email": 5}),
        ("existing (seeded user)", {"email": USER[0]}),
        ("existing uppercase variant", {"email": USER[0].upper()}),
        ("existing disabled user", {"email": DISABLED[0]}),
        ("same as current", {"email": em}),
        ("same as current uppercase", {"email": em.upper()}),
        ("with surrounding spaces", {"email": "  " + t.email("cespc") + "  "}),
    ]):
        t.r(f"POST /change-email {name}", "POST", "/change-email", s="a", json_body=body, mail="check")
    t.r("POST /change-email invalid JSON", "POST", "/change-email", s="a", raw="{bad")
    t.r("POST /change-email no CSRF", "POST", "/change-email", s="a", csrf=False,
        json_body={"email": t.email("cenocsrf")}, mail="check")
    new1 = t.email("ceb")
    t.r("POST /change-email valid", "POST", "/change-email", s="a", json_body={"email": new1}, mail="expect")
    tok1 = keep_token(t, "ce1", mail_token(t, "change-email"))
    new2 = t.email("cec")
    t.r("POST /change-email valid uppercase new address", "POST", "/change-email", s="a",
        json_body={"email": new2.upper()}, mail="expect")
    tok2 = keep_token(t, "ce2", mail_token(t, "change-email"))
    t.r("POST /change-email valid ?include_auth_token", "POST", "/change-email", s="a",
        params={"include_auth_token": ""}, json_body={"email": t.email("ced")}, mail="expect")
    t.r("GET /change-email/<garbage> json", "GET", "/change-email/not-a-real-token", s="g")
    t.r("GET /change-email/<garbage> html", "GET", "/change-email/not-a-real-token", s="g", accept="html")
    t.r("GET /change-email/<tampered>", "GET", "/change-email/" + tamper(tok1), s="g")
    t.r("POST /change-email/<token1> (GET only?)", "POST", f"/change-email/{tok1}", s="g", json_body={})
    t.r("GET /change-email/<token1> anon", "GET", f"/change-email/{tok1}", s="g")
    t.r("GET /api/data anon after confirming change (no auto-login)", "GET", "/api/data", s="g")
    t.r("GET /change-email/<token1> reused", "GET", f"/change-email/{tok1}", s="g")
    t.r("GET /change-email/<token1> reused html", "GET", f"/change-email/{tok1}", s="g", accept="html")
    t.r("GET /change-email/<token2> (issued for the old address)", "GET", f"/change-email/{tok2}", s="g")
    t.r("session a: GET /api/data after own email changed", "GET", "/api/data", s="a")
    t.r("session a: GET /change-email json after change", "GET", "/change-email", s="a")
    login_as(t, "POST /login old address", "l1", em)
    login_as(t, "POST /login new address", "l2", new1)
    login_as(t, "POST /login new address uppercase", "l3", new1.upper())
    # the requested address gets taken before the link is used
    em2 = new_user(t, "setup", "cee")
    login_as(t, "login cee", "b", em2)
    taken = t.email("cef")
    t.r("POST /change-email cee -> cef", "POST", "/change-email", s="b", json_body={"email": taken}, mail="expect")
    tok3 = keep_token(t, "ce3", mail_token(t, "change-email"))
    register(t, "register cef (takes the address)", "r", "cef")
    t.r("GET /change-email/<token3> address taken meanwhile", "GET", f"/change-email/{tok3}", s="g")
    # the link is used in a session of another user
    t.r("POST /change-email cee -> ceg", "POST", "/change-email", s="b", json_body={"email": t.email("ceg")},
        mail="expect")
    tok4 = keep_token(t, "ce4", mail_token(t, "change-email"))
    login(t, "session S: login user", "S", USER)
    t.r("session S: GET /change-email/<token4> html", "GET", f"/change-email/{tok4}", s="S", accept="html")
    t.r("session S: GET /api/data after", "GET", "/api/data", s="S")
    # token-authenticated, HTML form
    r = login_as(t, "login cee ?include_auth_token", "tk", t.email("ceg"), params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["token"] = tok
    t.r("GET /change-email token-authenticated", "GET", "/change-email", s="t1", headers={"X-Auth-Token": tok})
    t.r("POST /change-email token-authenticated, no CSRF", "POST", "/change-email", s="t2",
        headers={"X-Auth-Token": tok}, json_body={"email": t.email("ceh")}, mail="check")
    login_as(t, "login cee (html session)", "h", t.email("ceg"))
    t.r("GET /change-email html (h)", "GET", "/change-email", s="h", accept="html")
    t.r("POST /change-email form html existing", "POST", "/change-email", s="h", accept="html", csrf=False,
        data={"email": USER[0], "csrf_token": t.csrf.get("h") or ""}, mail="check")
    t.r("POST /change-email form html invalid", "POST", "/change-email", s="h", accept="html", csrf=False,
        data={"email": "bad", "csrf_token": t.csrf.get("h") or ""})
    t.r("POST /change-email form html no csrf_token", "POST", "/change-email", s="h", accept="html", csrf=False,
        data={"email": t.email("cei")})
    t.r("POST /change-email form html valid", "POST", "/change-email", s="h", accept="html", csrf=False,
        data={"email": t.email("cej"), "csrf_token": t.csrf.get("h") or ""}, mail="expect")
    tok5 = keep_token(t, "ce5", mail_token(t, "change-email"))
    t.r("GET /change-email/<token5> html", "GET", f"/change-email/{tok5}", s="h", accept="html")
    t.r("GET / html after change via link", "GET", "/", s="h", accept="html")
    t.r("GET /change-email/ (empty token)", "GET", "/change-email/", s="g")


@scenario(pair="username")
def change_username(t):
    """GET/POST /change-username (pair 'username')."""
    t.r("GET /change-username anon json", "GET", "/change-username", s="anon")
    t.r("GET /change-username anon html", "GET", "/change-username", s="anon", accept="html")
    t.r("POST /change-username anon", "POST", "/change-username", s="anon", json_body={"username": "whatever1"})
    em = new_user(t, "setup", "cua")
    login_as(t, "login cua", "a", em)
    t.r("GET /change-username json", "GET", "/change-username", s="a")
    t.r("GET /change-username html", "GET", "/change-username", s="a", accept="html")
    for i, (name, body) in enumerate([
        ("too short", {"username": "abc"}),
        ("33 chars", {"username": "a" * 33}),
        ("symbols", {"username": "ab_cd!"}),
        ("space", {"username": "ab cd ef"}),
        ("int", {"username": 12345}),
        ("existing admin", {"username": "admin"}),
        ("existing ADMIN (case)", {"username": "ADMIN"}),
        ("same as current", {"username": t.uname("cua")}),
        ("same as current uppercase", {"username": t.uname("cua").upper()}),
        ("email-like", {"username": "a@b.com"}),
    ]):
        t.r(f"POST /change-username {name}", "POST", "/change-username", s="a", json_body=body, mail="check")
    t.r("POST /change-username no CSRF", "POST", "/change-username", s="a", csrf=False,
        json_body={"username": t.uname("cub")})
    t.r("POST /change-username valid", "POST", "/change-username", s="a", json_body={"username": t.uname("cub")},
        mail="check")
    t.r("POST /login by new username", "POST", "/login", s="l1",
        json_body={"username": t.uname("cub"), "password": PW})
    t.r("POST /login by old username", "POST", "/login", s="l2",
        json_body={"username": t.uname("cua"), "password": PW})
    t.r("POST /change-username form html valid", "POST", "/change-username", s="a", accept="html", csrf=False,
        data={"username": t.uname("cuc"), "csrf_token": t.csrf.get("a") or ""}, mail="check")
    t.r("POST /change-username form html invalid", "POST", "/change-username", s="a", accept="html", csrf=False,
        data={"username": "x!", "csrf_token": t.csrf.get("a") or ""})
    r = login_as(t, "login cua ?include_auth_token", "tk", em, params={"include_auth_token": ""})
    tok = jget(r, "response", "user", "authentication_token") or "missing-token"
    t.vars["token"] = tok
    t.r("POST /change-username token-authenticated, no CSRF", "POST", "/change-username", s="t1",
        headers={"X-Auth-Token": tok}, json_body={"username": t.uname("cud")}, mail="check")
    # missing/empty username last: the reference treats the username as optional (clears it)
    t.r("POST /change-username {} missing", "POST", "/change-username", s="a", json_body={}, mail="check")
    t.r("GET /change-username json after {}", "GET", "/change-username", s="a")
    t.r("POST /change-username empty", "POST", "/change-username", s="a", json_body={"username": ""}, mail="check")
    t.r("GET /change-username json after empty", "GET", "/change-username", s="a")
    t.r("POST /change-username null", "POST", "/change-username", s="a", json_body={"username": None},
        mail="check")
    t.r("POST /login by the last username", "POST", "/login", s="l3",
        json_body={"username": t.uname("cud"), "password": PW})


@scenario(pair="username")
def recover_username(t):
    """GET/POST /recover-username (pair 'username')."""
    t.mail_also = {USER[0], DISABLED[0]}
    t.r("GET /recover-username json", "GET", "/recover-username", s="a")
    t.r("GET /recover-username html", "GET", "/recover-username", s="a", accept="html")
    for i, (name, body) in enumerate([
        ("{} missing", {}),
        ("empty", {"email": ""}),
        ("malformed", {"email": "not-an-email"}),
        ("unknown", {"email": "nosuch@example.com"}),
        ("email int", {"email": 5}),
        ("disabled", {"email": DISABLED[0]}),
        ("seeded user", {"email": USER[0]}),
        ("seeded user uppercase", {"email": USER[0].upper()}),
    ]):
        t.r(f"POST /recover-username {name}", "POST", "/recover-username", s=f"v{i}", json_body=body, mail="check")
    unc = new_user(t, "setup", "ruunc", confirm=False)
    t.r("POST /recover-username unconfirmed", "POST", "/recover-username", s="u", json_body={"email": unc},
        mail="check")
    em = new_user(t, "setup", "rua")
    t.r("POST /recover-username fresh user", "POST", "/recover-username", s="f", json_body={"email": em},
        mail="expect")
    mails = t.vars.get("_last_mails", [])
    t.note("recovery mail contains the username", "mail text",
           any(t.uname("rua").lower() in (m.get("text") or "").lower() for m in mails))
    login_as(t, "login rua", "li", em)
    t.r("POST /recover-username logged in", "POST", "/recover-username", s="li", json_body={"email": em},
        mail="check")
    t.r("POST /recover-username logged in no CSRF", "POST", "/recover-username", s="li", csrf=False,
        json_body={"email": em}, mail="check")
    t.r("POST /recover-username form html success", "POST", "/recover-username", s="h", accept="html",
        data={"email": em}, mail="check")
    t.r("POST /recover-username form html unknown", "POST", "/recover-username", s="h2", accept="html",
        data={"email": "nosuch@example.com"}, mail="check")


# ------------------------------------------------- generic responses (pair)
@scenario(pair="generic")
def generic_login(t):
    """Login failures with SECURITY_RETURN_GENERIC_RESPONSES."""
    unc = new_user(t, "setup", "glunc", confirm=False)
    for i, (name, body) in enumerate([
        ("wrong password", {"email": USER[0], "password": "wrongpw"}),
        ("unknown email", {"email": "nosuch@example.com", "password": "whatever1"}),
        ("unknown username", {"username": "nosuchuser", "password": "whatever1"}),
        ("username wrong password", {"username": "user", "password": "wrongpw"}),
        ("disabled right password", {"email": DISABLED[0], "password": DISABLED[1]}),
        ("disabled wrong password", {"email": DISABLED[0], "password": "wrongpw"}),
        ("unconfirmed right password", {"email": unc, "password": PW}),
        ("unconfirmed wrong password", {"email": unc, "password": "wrongpw"}),
        ("empty {}", {}),
        ("empty password", {"email": USER[0], "password": ""}),
        ("malformed email", {"email": "not-an-email", "password": "whatever1"}),
        ("success", {"email": USER[0], "password": USER[1]}),
    ]):
        t.r(f"POST /login {name}", "POST", "/login", s=f"v{i}", json_body=body)
    t.r("form login wrong password html", "POST", "/login", s="h1", accept="html",
        data={"email": USER[0], "password": "wrongpw"})
    t.r("form login unknown html", "POST", "/login", s="h2", accept="html",
        data={"email": "nosuch@example.com", "password": "whatever1"})


@scenario(pair="generic")
def generic_reset_confirm(t):
    """/reset and /confirm with generic responses, and the mails sent."""
    t.mail_also = {USER[0], DISABLED[0]}
    unc = new_user(t, "setup", "grunc", confirm=False)
    em = new_user(t, "setup", "grok")
    for i, (name, body, mail) in enumerate([
        ("unknown", {"email": "nosuch@example.com"}, "check"),
        ("known confirmed", {"email": em}, "expect"),
        ("known uppercase", {"email": em.upper()}, "expect"),
        ("unconfirmed", {"email": unc}, "check"),
        ("disabled", {"email": DISABLED[0]}, "check"),
        ("malformed", {"email": "not-an-email"}, "check"),
        ("empty", {"email": ""}, "check"),
        ("{}", {}, "check"),
    ]):
        t.r(f"POST /reset {name}", "POST", "/reset", s=f"r{i}", json_body=body, mail=mail)
    t.r("POST /reset form html unknown", "POST", "/reset", s="rh1", accept="html",
        data={"email": "nosuch@example.com"}, mail="check")
    t.r("POST /reset form html known", "POST", "/reset", s="rh2", accept="html", data={"email": em}, mail="expect")
    for i, (name, body, mail) in enumerate([
        ("unknown", {"email": "nosuch@example.com"}, "check"),
        ("already confirmed (seeded)", {"email": USER[0]}, "check"),
        ("already confirmed (fresh)", {"email": em}, "check"),
        ("unconfirmed", {"email": unc}, "expect"),
        ("disabled", {"email": DISABLED[0]}, "check"),
        ("malformed", {"email": "not-an-email"}, "check"),
        ("{}", {}, "check"),
    ]):
        t.r(f"POST /confirm {name}", "POST", "/confirm", s=f"c{i}", json_body=body, mail=mail)
    t.r("POST /confirm form html unknown", "POST", "/confirm", s="ch1", accept="html",
        data={"email": "nosuch@example.com"}, mail="check")
    t.r("GET /reset/<garbage>", "GET", "/reset/not-a-real-token", s="g")
    t.r("GET /confirm/<garbage>", "GET", "/confirm/not-a-real-token", s="g")


@scenario(pair="generic")
def generic_register(t):
    """/register with existing email / username under generic responses, and the mails sent."""
    t.mail_also = {USER[0], ADMIN[0]}
    t.r("POST /register existing seeded email", "POST", "/register", s="a",
        json_body={"email": USER[0], "password": PW, "password_confirm": PW}, mail="check")
    t.r("POST /register existing seeded email uppercase", "POST", "/register", s="b",
        json_body={"email": USER[0].upper(), "password": PW, "password_confirm": PW}, mail="check")
    t.r("POST /register existing username (new email)", "POST", "/register", s="c",
        json_body={"email": t.email("grb"), "username": "admin", "password": PW, "password_confirm": PW},
        mail="check")
    t.r("POST /register existing username uppercase (new email)", "POST", "/register", s="c2",
        json_body={"email": t.email("grb2"), "username": "ADMIN", "password": PW, "password_confirm": PW},
        mail="check")
    t.r("POST /register existing email + existing username", "POST", "/register", s="d",
        json_body={"email": USER[0], "username": "admin", "password": PW, "password_confirm": PW}, mail="check")
    t.r("POST /register existing email + invalid password", "POST", "/register", s="e",
        json_body={"email": USER[0], "password": "abc", "password_confirm": "abc"}, mail="check")
    t.r("POST /register existing email + password mismatch", "POST", "/register", s="e2",
        json_body={"email": USER[0], "password": PW, "password_confirm": PW + "x"}, mail="check")
    t.r("POST /register new", "POST", "/register", s="f",
        json_body={"email": t.email("grc"), "username": t.uname("grc"), "password": PW, "password_confirm": PW},
        mail="expect")
    t.r("POST /register new ?include_auth_token", "POST", "/register", s="f2", params={"include_auth_token": ""},
        json_body={"email": t.email("grd"), "password": PW, "password_confirm": PW}, mail="expect")
    t.r("POST /register again the new (unconfirmed) email", "POST", "/register", s="g",
        json_body={"email": t.email("grc"), "password": PW, "password_confirm": PW}, mail="check")
    t.r("POST /register existing username of the new user", "POST", "/register", s="g2",
        json_body={"email": t.email("gre"), "username": t.uname("grc"), "password": PW, "password_confirm": PW},
        mail="check")
    t.r("POST /register form html existing email", "POST", "/register", s="h", accept="html",
        data={"email": USER[0], "password": PW, "password_confirm": PW}, mail="check")
    t.r("POST /register form html invalid email", "POST", "/register", s="h2", accept="html",
        data={"email": "bad", "password": PW, "password_confirm": PW}, mail="check")


@scenario(pair="generic")
def generic_change_email(t):
    """/change-email (and /change) under generic responses."""
    t.mail_also = {USER[0], ADMIN[0]}
    em = new_user(t, "setup", "gca")
    login_as(t, "login gca", "a", em)
    for i, (name, body, mail) in enumerate([
        ("existing (seeded)", {"email": USER[0]}, "check"),
        ("existing uppercase", {"email": ADMIN[0].upper()}, "check"),
        ("same as current", {"email": em}, "check"),
        ("invalid", {"email": "not-an-email"}, "check"),
        ("{}", {}, "check"),
        ("new", {"email": t.email("gcb")}, "expect"),
    ]):
        t.r(f"POST /change-email {name}", "POST", "/change-email", s="a", json_body=body, mail=mail)
    t.r("POST /change-email form html existing", "POST", "/change-email", s="a", accept="html", csrf=False,
        data={"email": USER[0], "csrf_token": t.csrf.get("a") or ""}, mail="check")
    t.r("POST /change wrong current password", "POST", "/change", s="a",
        json_body={"password": "wrongpw1", "new_password": "newpass123", "new_password_confirm": "newpass123"})
    t.r("POST /change valid", "POST", "/change", s="a",
        json_body={"password": PW, "new_password": "newpass123", "new_password_confirm": "newpass123"},
        mail="expect")
    t.r("GET /change-email/<garbage>", "GET", "/change-email/not-a-real-token", s="g")



# =================================================================== runner
IMPORTANCE = [
    "exception", "status", "errors", "field_errors", "field_errors_order", "location", "location_raw",
    "response_keys", "response_values", "response", "json", "json_keys", "meta", "body", "set_cookie",
    "set_cookie[session]", "set_cookie[XSRF-TOKEN]", "set_cookie[remember_token]",
    "content_type", "www_authenticate", "mails", "value", "cache_control", "allow", "vary",
    "html_form_inputs", "html_title", "request",
]


def importance(key):
    if key in IMPORTANCE:
        return IMPORTANCE.index(key)
    if key.startswith("set_cookie["):
        return IMPORTANCE.index("set_cookie[remember_token]")
    return 99


def compare(ref_obs, tgt_obs):
    """Align steps by (name, occurrence) and return list of (step, desc, diffs)."""
    def index(obs):
        seen = {}
        out = []
        for step, desc, o in obs:
            n = seen.get(step, 0)
            seen[step] = n + 1
            out.append(((step, n), desc, o))
        return out

    ri, ti = index(ref_obs), index(tgt_obs)
    tmap = {k: (d, o) for k, d, o in ti}
    rkeys = {k for k, _, _ in ri}
    res = []
    for k, desc, o in ri:
        if k not in tmap:
            res.append((k[0], desc, [("step", "present", "MISSING (scenario aborted?)")]))
            continue
        tdesc, to = tmap[k]
        diffs = []
        keys = list(dict.fromkeys(list(o.keys()) + list(to.keys())))
        keys.sort(key=importance)
        for key in keys:
            a, b = o.get(key, "<absent>"), to.get(key, "<absent>")
            if a != b:
                diffs.append((key, a, b))
        if desc != tdesc:
            diffs.append(("request", desc, tdesc))
        if diffs:
            res.append((k[0], desc, diffs))
    for k, desc, o in ti:
        if k not in rkeys:
            res.append((k[0], desc, [("step", "MISSING", "present")]))
    return res


def fmt(v):
    if isinstance(v, str):
        return v if v.startswith("<") and v.endswith(">") else json.dumps(v, ensure_ascii=False)
    return json.dumps(v, ensure_ascii=False)


def run(args):
    rnd: dict = {}
    ctxs: dict = {}
    for role in ("ref", "target", "ref_username", "ref_generic", "target_generic"):
        base, mail = getattr(args, role), getattr(args, role + "_mail")
        if not base:
            continue
        c = Ctx(role, base, mail, rnd, args.secret_key)
        try:
            requests.get(c.base + "/login", headers={"Accept": "application/json"}, timeout=10)
        except requests.RequestException as e:
            print(f"cannot reach {c.name} at {c.base}: {e}", file=sys.stderr)
            return 2
        if not mail or not os.path.isdir(c.maildir):
            print(f"mail dir of {c.name} does not exist: {c.maildir}", file=sys.stderr)
            return 2
        ctxs[role] = c
    only = set(filter(None, (args.only or "").split(",")))
    results = []
    skipped = []
    total_steps = 0
    for fn in SCENARIOS:
        if only and fn.__name__ not in only:
            continue
        rrole, trole = PAIRS[fn.pair]
        if rrole not in ctxs or trole not in ctxs:
            skipped.append((fn.__name__, f"needs --{rrole.replace('_', '-')} and --{trole.replace('_', '-')}"))
            print(f"[{fn.__name__}] skipped (pair {fn.pair} not given)", file=sys.stderr)
            continue
        ref, tgt = ctxs[rrole], ctxs[trole]
        per = {}
        for c, name in ((ref, "reference"), (tgt, "target")):
            c.obs = []
            c.vars = {}
            c.mail_also = set()
            for sname in list(c.sessions):
                c.sessions[sname].close()
            c.sessions.clear()
            c.csrf.clear()
            try:
                fn(c)
            except Exception as e:  # keep going: report the crash as a step
                c.obs.append(("<scenario crashed>", "-", {"exception": "".join(
                    traceback.format_exception_only(type(e), e)).strip()}))
            per[name] = list(c.obs)
        diffs = compare(per["reference"], per["target"])
        total_steps += len(per["reference"])
        results.append((fn.__name__, fn.pair, diffs, per))
        print(f"[{fn.__name__}] pair={fn.pair} steps={len(per['reference'])} differing={len(diffs)}",
              file=sys.stderr)
        if args.verbose:
            for name in ("reference", "target"):
                for step, desc, o in per[name]:
                    print(f"  {name} | {step} | {desc}\n      {json.dumps(o, ensure_ascii=False)}", file=sys.stderr)
    report = render(results, total_steps, args, skipped)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            fh.write(report)
        print(f"report written to {args.report}", file=sys.stderr)
    else:
        print(report)
    return 1 if any(d for _, _, d, _ in results) else 0


PERVASIVE_MIN = 30  # a (field, ref, tgt) difference seen in this many steps is listed once, up front


def _triple(key, a, b):
    return (key, json.dumps(a, ensure_ascii=False, sort_keys=True), json.dumps(b, ensure_ascii=False, sort_keys=True))


def render(results, total_steps, args, skipped=()):
    lines = []
    ndiff = sum(len(d) for _, _, d, _ in results)
    lines.append("# Differential probe: Flask-Security reference vs Rust target")
    lines.append("")
    lines.append("Generated by `tests/conformance/diff_probe.py` (see its docstring for the exact command).")
    lines.append(f"Reference `{args.ref}`, target `{args.target}`: {total_steps} steps (all pairs), {ndiff} with some difference.")
    if args.ref_username:
        lines.append(f"Pair `username`: reference with SECURITY_CHANGE_USERNAME + SECURITY_USERNAME_RECOVERY "
                     f"`{args.ref_username}` vs target `{args.target}`.")
    if args.ref_generic:
        lines.append(f"Pair `generic` (FS_GENERIC_RESPONSES=1 on both): reference `{args.ref_generic}`, "
                     f"target `{args.target_generic}`.")
    lines.append("Mails: `to`, `subject` and the links found in the text/html bodies (`<tok>` = token path")
    lines.append("segment or query value).")
    lines.append("`ref` = reference (Flask-Security 5.9), `tgt` = Rust target. Masked: `<R:label>` = random id of an")
    lines.append("identity generated for this run, `<host>` = the app's host:port, `<str>`/`<token>` = random tokens,")
    lines.append("`<tok>` = token query value in a Location, `<absent>` = field/header/cookie not present,")
    lines.append("`body` = kind of body (`<json>`, `<html>`, `<empty>`, `<redirect body>` or the text itself).")
    lines.append("Set-Cookie: attributes present per cookie (`Max-Age=0`/`Expires(past)`/`(deleting)` = deletion).")
    lines.append("")
    # all (field, ref, tgt) triples
    counts: dict = {}
    for scen, _, diffs, _ in results:
        for step, desc, dl in diffs:
            for key, a, b in dl:
                if key != "request":
                    k = _triple(key, a, b)
                    counts.setdefault(k, []).append((scen, step))
    # only "header-ish" fields can be pervasive; status/errors/location/response differences are always listed
    pervasive = {k for k, v in counts.items() if len(v) >= PERVASIVE_MIN and importance(k[0]) > importance("meta")}
    lines.append(f"## 1. Pervasive differences (same field and values in >= {PERVASIVE_MIN} steps; omitted below)")
    lines.append("")
    for k in sorted(pervasive, key=lambda k: (importance(k[0]), -len(counts[k]))):
        key, a, b = k
        lst = counts[k]
        sample = "; ".join(f"{sc}: {st}" for sc, st in lst[:4])
        lines.append(f"* **{key}** in {len(lst)} steps: ref `{a}` / tgt `{b}` (e.g. {sample})")
    # group steps by their remaining difference signature
    groups: dict = {}
    for scen, _, diffs, _ in results:
        for step, desc, dl in diffs:
            own = tuple((key, a, b) for key, a, b in dl if key == "request" or _triple(key, a, b) not in pervasive)
            if not own or all(k == "request" for k, _, _ in own):
                continue
            sig = tuple(_triple(k, a, b) for k, a, b in own if k != "request")
            g = groups.setdefault(sig, {"diffs": [x for x in own if x[0] != "request"], "steps": []})
            req = [x for x in own if x[0] == "request"]
            g["steps"].append((scen, step, desc, req[0][2] if req else None))

    def gkey(item):
        sig, g = item
        return (min(importance(k[0]) for k in sig), -len(g["steps"]), g["steps"][0][0], g["steps"][0][1])

    lines.append("")
    lines.append("## 2. Differences (steps with the same differences are grouped; most important field first)")
    for i, (sig, g) in enumerate(sorted(groups.items(), key=gkey), 1):
        lines.append("")
        first = g["diffs"][0][0]
        lines.append(f"### D{i}. {first} — {len(g['steps'])} step(s)")
        for scen, step, desc, tdesc in g["steps"]:
            extra = f" (target request: `{tdesc}`)" if tdesc else ""
            lines.append(f"* {scen} › **{step}** — `{desc}`{extra}")
        for key, a, b in g["diffs"]:
            lines.append(f"  * {key}: ref {fmt(a)}")
            lines.append(f"    {' ' * len(key)}  tgt {fmt(b)}")
    lines.append("")
    lines.append("## 3. Steps per scenario")
    lines.append("")
    for scen, pair, diffs, per in results:
        n = len(per["reference"])
        nonperv = sum(1 for step, desc, dl in diffs
                      if any(k != "request" and _triple(k, a, b) not in pervasive for k, a, b in dl))
        lines.append(f"* {scen} (pair {pair}): {n} steps, {nonperv} with non-pervasive differences")
    for scen, why in skipped:
        lines.append(f"* {scen}: skipped ({why})")
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", help="reference base URL, e.g. http://127.0.0.1:8310")
    ap.add_argument("--ref-mail", help="mail dir of the reference's SMTP sink")
    ap.add_argument("--target", help="target base URL, e.g. http://127.0.0.1:8320")
    ap.add_argument("--target-mail", help="mail dir of the target's SMTP sink")
    ap.add_argument("--ref-username", help="reference with SECURITY_CHANGE_USERNAME/USERNAME_RECOVERY on "
                    "(pair 'username', compared with --target)")
    ap.add_argument("--ref-username-mail", help="its mail dir")
    ap.add_argument("--ref-generic", help="reference started with FS_GENERIC_RESPONSES=1 (pair 'generic')")
    ap.add_argument("--ref-generic-mail", help="its mail dir")
    ap.add_argument("--target-generic", help="target started with FS_GENERIC_RESPONSES=1 (pair 'generic')")
    ap.add_argument("--target-generic-mail", help="its mail dir")
    ap.add_argument("--report", help="write the Markdown report here (default: stdout)")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("--secret-key", default=os.environ.get("SECRET_KEY") or DEFAULT_SECRET_KEY,
                    help="SECRET_KEY of both apps (to forge expired tokens)")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for fn in SCENARIOS:
            print(f"{fn.__name__}  (pair {fn.pair})")
        return 0
    if not (args.ref and args.ref_mail and args.target and args.target_mail):
        ap.error("--ref, --ref-mail, --target and --target-mail are required")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
