#!/usr/bin/env bash
# Instructions per request, quickstart next to bare_rocket, counted by
# valgrind's callgrind: the same four requests as bench/http.sh, but a count
# that does not move with the machine's load (user-space instructions only;
# the kernel's share of a request, the same for both, is not in it).
# `bash bench/instructions.sh` from anywhere; BENCHMARKS.md has the results.
#
# Builds both in release, installs valgrind (apt) when missing, starts each
# under callgrind with one worker, logs in once as the admin, then for each
# request: 200 requests unmeasured (warm caches), then BENCH_REQUESTS
# (default 2000) measured ones on one keep-alive connection, each checked
# for its expected status.
#
# Environment: BENCH_REQUESTS, CARGO_TARGET_DIR (default: target/ of the
# repository). Exits non-zero when a build, a start, the login or a status
# check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$ROOT/bench/http_helper.py"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
N="${BENCH_REQUESTS:-2000}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_REQUESTS must be a positive integer" >&2; exit 1; }

log() { printf '[instructions] %s\n' "$*" >&2; }
die() { printf 'bench/instructions.sh: %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fs-instr.XXXXXX")"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building release quickstart and bare_rocket (target dir $TARGET_DIR)"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p quickstart -p bare_rocket) ||
    die "cargo build failed"
for bin in quickstart bare_rocket; do
    cp "$TARGET_DIR/release/$bin" "$WORK/$bin" || die "missing $TARGET_DIR/release/$bin"
done
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    log "installing valgrind (apt)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq valgrind; } >"$WORK/apt.log" 2>&1 ||
        { tail -n 20 "$WORK/apt.log" >&2; die "could not install valgrind"; }
fi

# Sends `count` GETs of `path` with `header` on one connection; fails on
# any other status than `want`.
drive() {   # port path header want count
    python3 - "$@" <<'PY'
import http.client, sys
port, path, header, want, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
headers = {"Accept": "application/json"}
if header:
    k, v = header.split(": ", 1)
    headers[k] = v
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
for _ in range(count):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != want:
        sys.exit(f"GET {path}: expected {want}, got {r.status}")
PY
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
measure() {   # side binary
    local side="$1" bin="$2" port pid i
    port="$(python3 "$HELPER" free-port)"
    env ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT="$port" ROCKET_LOG_LEVEL=off ROCKET_WORKERS=1 \
        DATABASE_URL="$WORK/quickstart.db" FS_FAST_HASH=1 TRUSTED_HOSTS="127.0.0.1:$port" \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/$side.cg" \
        "$WORK/$bin" >"$WORK/$side.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for i in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$WORK/$side.log" >&2; die "$bin exited at start"; }
        curl -s -o /dev/null "http://127.0.0.1:$port/login" && break
        sleep 0.5
    done
    [ "$i" -lt 600 ] || die "$bin did not answer within 5 min"
    if [ "$side" = quickstart ]; then
        python3 "$HELPER" login "http://127.0.0.1:$port" admin@example.com admin123 >"$WORK/creds" ||
            die "login failed"
    fi
    local token session
    token="$(sed -n 1p "$WORK/creds")"
    session="$(sed -n 2p "$WORK/creds")"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    local c qpath bpath header want n=0
    for c in token session login login_headers unauth; do
        case $c in
            token) qpath=/api/protected bpath=/api/protected header="X-Auth-Token: $token" want=200 ;;
            session) qpath=/api/data bpath=/api/data header="Cookie: $session" want=200 ;;
            login) qpath=/login bpath=/login header="" want=200 ;;
            login_headers) qpath=/login bpath=/login-headers header="" want=200 ;;
            unauth) qpath=/api/protected bpath=/unauth header="" want=401 ;;
        esac
        local path="$qpath"
        [ "$side" = bare ] && path="$bpath"
        drive "$port" "$path" "$header" "$want" 200 || die "$side $c: warm-up failed"
        callgrind_control -z "$pid" >/dev/null 2>&1
        drive "$port" "$path" "$header" "$want" "$N" || die "$side $c: run failed"
        callgrind_control -d "$c" "$pid" >/dev/null 2>&1
        n=$((n + 1))
        # The dump is numbered; its `totals:` line is what ran since the zeroing.
        local dump total
        for i in $(seq 1 100); do
            dump="$(ls -t "$WORK/$side.cg".* 2>/dev/null | head -n 1 || true)"
            [ "$(ls "$WORK/$side.cg".* 2>/dev/null | wc -l)" -ge "$n" ] && break
            sleep 0.2
        done
        total="$(awk '$1 == "totals:" || $1 == "summary:" { print $2; exit }' "$dump")"
        [ -n "$total" ] || die "no totals in $dump"
        printf '%s\t%s\t%s\n' "$c" "$side" "$((total / N))" >>"$RESULTS"
        log "$side $c: $((total / N)) instructions per request"
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# The quickstart first: it logs in, and bare_rocket gets the same headers.
measure quickstart quickstart
measure bare bare_rocket

python3 - "$RESULTS" "$N" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    case, side, ir = line.split("\t")
    rows[(case, side)] = int(ir)
labels = {
    "token": "token `GET /api/protected`",
    "session": "session `GET /api/data`",
    "login": "anonymous `GET /login` (JSON)",
    "login_headers": "anonymous `GET /login` (JSON), bare with the same headers (`/login-headers`)",
    "unauth": "no credentials `GET /api/protected`, 401 (bare: `/unauth`)",
}
print(f"callgrind, {sys.argv[2]} requests per case after 200 unmeasured, one worker, user-space instructions")
print()
print("| request | bare instructions | quickstart instructions | quickstart − bare | bare / quickstart (%) |")
print("|---|---:|---:|---:|---:|")
for case, label in labels.items():
    b, q = rows[(case, "bare")], rows[(case, "quickstart")]
    print(f"| {label} | {b:,} | {q:,} | {q - b:+,} | {100 * b / q:.1f} |")
PY
