#!/usr/bin/env bash
# HTTP throughput of the quickstart app next to bare Rocket routes that
# answer the same JSON (examples/bare_rocket): what the library costs per
# request. `bash bench/http.sh` from anywhere; BENCHMARKS.md has the results.
#
# Builds both in release, installs wrk (apt) when missing, starts both on
# free ports (quickstart on a fresh SQLite file), logs in once as the admin
# for an auth token and a session cookie, checks each answer's status, then
# runs wrk on each request, bare and quickstart in turn, so that both see the
# same machine. Every measured request is a GET: no password hash runs in
# them (FS_FAST_HASH=1 only makes the one login and the seeding cheap).
#
#   request                                   quickstart         bare
#   token     + X-Auth-Token                  GET /api/protected GET /api/protected
#   session   + session cookie                GET /api/data      GET /api/data
#   anonymous, Accept: application/json       GET /login         GET /login
#   the same, bare with the same headers      GET /login         GET /login-headers
#   no credentials, Accept: application/json  GET /api/protected GET /unauth (401)
#
# Environment: BENCH_DURATION (wrk -d, default 10s), BENCH_CONNECTIONS
# (wrk -c, default 32), BENCH_THREADS (wrk -t, default 2), BENCH_REPEAT
# (rounds, default 1; the table has the medians), BENCH_OUT (also write the
# table there), BENCH_RETRIES (how often a run during which a cargo, rustc
# or other wrk process ran is done again, default 5; runs also wait for a quiet machine),
# CARGO_TARGET_DIR (default: target/ of the repository).
# Exits non-zero when a build, a start, the login or a status check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$ROOT/bench/http_helper.py"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
REPEAT="${BENCH_REPEAT:-1}"
EMAIL=admin@example.com
PASSWORD=admin123

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'bench/http.sh: %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fs-bench.XXXXXX")"
STARTED=()
WATCHER=""
cleanup() {
    local pid
    [ -z "$WATCHER" ] || kill "$WATCHER" 2>/dev/null || true
    for pid in "${STARTED[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer, not '$REPEAT'"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer"
[[ "${BENCH_RETRIES:-5}" =~ ^[0-9]+$ ]] || die "BENCH_RETRIES must be a number"
[ "$THREADS" -le "$CONNECTIONS" ] || die "BENCH_THREADS ($THREADS) exceeds BENCH_CONNECTIONS ($CONNECTIONS)"

# --- build -------------------------------------------------------------------
log "building release quickstart and bare_rocket (target dir $TARGET_DIR)"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p quickstart -p bare_rocket) ||
    die "cargo build failed"
# Copies: a build in a shared target dir cannot swap the binaries mid-run.
for bin in quickstart bare_rocket; do
    [ -x "$TARGET_DIR/release/$bin" ] || die "missing $TARGET_DIR/release/$bin"
    cp "$TARGET_DIR/release/$bin" "$WORK/$bin"
done

# --- wrk ---------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk (apt)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq wrk; } >"$WORK/apt.log" 2>&1 ||
        { tail -n 20 "$WORK/apt.log" >&2; die "could not install wrk"; }
fi

# --- machine quiet? ------------------------------------------------------------
# Another compile or benchmark on a small machine makes the numbers
# meaningless: wait for it. OWN_WRK: wrk processes of ours running now.
OWN_WRK=0
builds_running() {
    pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null ||
        [ "$(pgrep -x wrk | wc -l)" -gt "$OWN_WRK" ]
}
NOISY=0
RETRIES="${BENCH_RETRIES:-5}"
# Polls for compiles while a run goes on; leaves $WORK/noisy when it saw one.
watch_start() {
    rm -f "$WORK/noisy"
    (OWN_WRK=1
    while :; do
        if builds_running; then : >"$WORK/noisy"; fi
        sleep 0.5
    done) &
    WATCHER=$!
}
watch_stop() {
    kill "$WATCHER" 2>/dev/null || true
    wait "$WATCHER" 2>/dev/null || true
    WATCHER=""
    [ ! -e "$WORK/noisy" ]
}
wait_quiet() {
    local waited=0
    while builds_running; do
        [ "$waited" = 0 ] && log "a cargo, rustc or other wrk process is running: waiting for it to end"
        sleep 5
        waited=$((waited + 5))
        [ "$waited" -lt 1800 ] || die "cargo, rustc or another wrk still running after 30 min"
    done
}

# --- start both ------------------------------------------------------------------
rss_kib() { awk -v k="${2:-VmRSS:}" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

LAST_PID=""
start() {   # name port env...
    local name="$1" port="$2"
    shift 2
    env ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT="$port" ROCKET_LOG_LEVEL=off "$@" \
        "$WORK/$name" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
    local i
    for i in $(seq 1 300); do
        kill -0 "$LAST_PID" 2>/dev/null ||
            { tail -n 20 "$WORK/$name.log" >&2; die "$name exited at start"; }
        if curl -s -o /dev/null -H 'Accept: application/json' "http://127.0.0.1:$port/login"; then
            return 0
        fi
        sleep 0.2
    done
    tail -n 20 "$WORK/$name.log" >&2
    die "$name did not answer on port $port within 60 s"
}

BARE_PORT="$(python3 "$HELPER" free-port)"
start bare_rocket "$BARE_PORT"
BARE_PID="$LAST_PID"
QS_PORT="$(python3 "$HELPER" free-port)"
[ "$QS_PORT" != "$BARE_PORT" ] || QS_PORT="$(python3 "$HELPER" free-port)"
start quickstart "$QS_PORT" DATABASE_URL="$WORK/quickstart.db" FS_FAST_HASH=1 \
    TRUSTED_HOSTS="127.0.0.1:$QS_PORT"
QS_PID="$LAST_PID"
sleep 1
QS_IDLE_KIB="$(rss_kib "$QS_PID")"
BARE_IDLE_KIB="$(rss_kib "$BARE_PID")"
BARE="http://127.0.0.1:$BARE_PORT"
QS="http://127.0.0.1:$QS_PORT"
log "bare_rocket pid $BARE_PID on $BARE, quickstart pid $QS_PID on $QS"

# --- credentials -------------------------------------------------------------------
CREDS="$(python3 "$HELPER" login "$QS" "$EMAIL" "$PASSWORD")" || die "login as $EMAIL failed"
TOKEN="$(sed -n 1p <<<"$CREDS")"
SESSION="$(sed -n 2p <<<"$CREDS")"
[ -n "$TOKEN" ] && [ -n "$SESSION" ] || die "login gave no token or no session cookie"

# case -> path on each side, extra header, expected status
declare -A QS_PATH=([token]=/api/protected [session]=/api/data [login]=/login [login_headers]=/login [unauth]=/api/protected)
declare -A BARE_PATH=([token]=/api/protected [session]=/api/data [login]=/login [login_headers]=/login-headers [unauth]=/unauth)
declare -A HEADER=([token]="X-Auth-Token: $TOKEN" [session]="Cookie: $SESSION" [login]="" [login_headers]="" [unauth]="")
declare -A EXPECT=([token]=200 [session]=200 [login]=200 [login_headers]=200 [unauth]=401)
CASES=(token session login login_headers unauth)

url_of() {   # side case
    if [ "$1" = bare ]; then echo "$BARE${BARE_PATH[$2]}"; else echo "$QS${QS_PATH[$2]}"; fi
}

# --- status checks -------------------------------------------------------------------
for side in bare quickstart; do
    for c in "${CASES[@]}"; do
        args=(-s -o "$WORK/check.body" -w '%{http_code}' -H 'Accept: application/json')
        [ -z "${HEADER[$c]}" ] || args+=(-H "${HEADER[$c]}")
        code="$(curl "${args[@]}" "$(url_of "$side" "$c")")" || code="no answer"
        [ "$code" = "${EXPECT[$c]}" ] ||
            die "$side GET $(url_of "$side" "$c") ($c): expected ${EXPECT[$c]}, got $code: $(head -c 300 "$WORK/check.body")"
    done
done
log "status checks passed (200/200/200/200/401 on both)"

# --- runs ------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for round in $(seq 1 "$REPEAT"); do
    for c in "${CASES[@]}"; do
        for side in bare quickstart; do
            out="$WORK/wrk-$c-$side-$round.txt"
            args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H 'Accept: application/json')
            [ -z "${HEADER[$c]}" ] || args+=(-H "${HEADER[$c]}")
            # A run during which a compile (or another wrk) ran is done again (BENCH_RETRIES times).
            for attempt in $(seq 0 "$RETRIES"); do
                wait_quiet
                watch_start
                wrk "${args[@]}" "$(url_of "$side" "$c")" >"$out" 2>&1 ||
                    { cat "$out" >&2; die "wrk failed ($side $c)"; }
                if watch_stop; then break; fi
                if [ "$attempt" = "$RETRIES" ]; then
                    NOISY=1
                    log "$side $c round $round: a compile or another wrk ran during every attempt; keeping the last"
                else
                    log "$side $c round $round: a compile or another wrk ran during the run; again"
                fi
            done
            # A 200 case must stay 200 all run long (a token or session that
            # stops working would otherwise pass as fast 401s).
            if [ "${EXPECT[$c]}" = 200 ] && grep -q 'Non-2xx or 3xx responses' "$out"; then
                cat "$out" >&2
                die "$side $c: non-2xx answers during the run"
            fi
            if grep -q 'Socket errors' "$out"; then
                log "$side $c round $round: $(grep 'Socket errors' "$out" | sed 's/^ *//')"
            fi
            rate="$(python3 "$HELPER" requests-per-sec "$out")"
            printf '%s\t%s\t%s\n' "$c" "$side" "$rate" >>"$RESULTS"
            log "round $round/$REPEAT $c $side: $rate req/s"
        done
    done
done
QS_STEADY_KIB="$(rss_kib "$QS_PID")"
QS_PEAK_KIB="$(rss_kib "$QS_PID" VmHWM:)"
BARE_STEADY_KIB="$(rss_kib "$BARE_PID")"

# --- report ------------------------------------------------------------------------------
REPORT="$WORK/report.md"
{
    echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, Accept: application/json on every request;" \
        "$REPEAT round(s), median; $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1);" \
        "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (modified)')"
    echo
    python3 "$HELPER" table "$RESULTS"
    echo
    echo "quickstart RSS: $(mib "$QS_IDLE_KIB") MiB idle after start, $(mib "$QS_STEADY_KIB") MiB after the runs (VmRSS; peak VmHWM $(mib "$QS_PEAK_KIB") MiB)."
    echo "bare_rocket RSS: $(mib "$BARE_IDLE_KIB") MiB idle after start, $(mib "$BARE_STEADY_KIB") MiB after the runs."
    if [ "$NOISY" = 1 ]; then
        echo
        echo "WARNING: a cargo, rustc or other wrk process ran during at least one run (after $RETRIES retries): these numbers are not comparable."
    fi
} >"$REPORT"
cat "$REPORT"
if [ -n "${BENCH_OUT:-}" ]; then
    cp "$REPORT" "$BENCH_OUT" || die "could not write BENCH_OUT=$BENCH_OUT"
    log "table written to $BENCH_OUT"
fi
