# bench/lib.sh: helpers shared by the benchmark scripts (sourced, not run).
#
# Everything a script starts (Warden, nginx, PostgreSQL, Redis, exporters,
# monit) runs on a free 127.0.0.1 port with its own config in one temporary
# directory, is remembered by pid, and is stopped by pid on exit. System
# services are never touched.

set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WARDEN=${WARDEN:-$BENCH_ROOT/target/release/warden}
BENCH_TMP=$(mktemp -d /tmp/warden-bench.XXXXXX)
chmod 755 "$BENCH_TMP"
BENCH_PIDS=()
BENCH_PG_DATAS=()
CLK_TCK=$(getconf CLK_TCK)

# The RSA public key of RFC 7517 appendix A.1, as identity providers publish it.
JWKS_BODY='{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"2011-04-29","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}'

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        # Bounded wait: 5 s per process, then SIGKILL.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    local data
    for data in "${BENCH_PG_DATAS[@]}"; do
        [[ -f $data/postmaster.pid ]] || continue
        runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    done
    [[ ${BENCH_KEEP_TMP:-0} == 1 ]] || rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# need COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || { echo "$1: not found after installing $2" >&2; exit 1; }
}

need_warden() {
    # scale.sh and check-cost.sh also need the noop test plugin, which a
    # plain `cargo build --release` does not build.
    if [[ ! -x $WARDEN || ! -f $(dirname "$WARDEN")/libwarden_test_noop.so ]]; then
        log "building warden (release)"
        (cd "$BENCH_ROOT" && cargo build --release -p warden -p warden-plugin-system \
            -p warden-plugin-postgres -p warden-plugin-redis -p warden-plugin-jwks \
            -p warden-test-plugin-noop)
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT [SECONDS]: up to SECONDS (default 20) for something to
# listen on 127.0.0.1:PORT.
wait_port() {
    local limit=${2:-20}
    for _ in $(seq $((limit * 10))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after $limit s" >&2
    return 1
}

# wait_http URL [CODE]: up to 30 s for URL to answer CODE (default 200).
wait_http() {
    local want=${2:-200}
    for _ in $(seq 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == "$want" ]] && return 0
        sleep 0.1
    done
    echo "$1 did not answer $want within 30 s" >&2
    return 1
}

machine() {
    local model mem
    model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
    mem=$(free -m | awk '/^Mem:/ {print $2 " MiB"}')
    echo "nproc $(nproc), CPU ${model:-unknown}, memory $mem, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

# cpu_ticks PID: user+system ticks of PID, plus those of its reaped children.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"
}

# tree_ticks PID: cpu_ticks of PID plus the live children's own ticks (a
# PostgreSQL postmaster and its backends).
tree_ticks() {
    local total child
    total=$(cpu_ticks "$1")
    for child in $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$child/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# sched_ns PID: CPU time of PID's live threads in nanoseconds (schedstat:
# finer than the 10 ms ticks of /proc/PID/stat).
sched_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'
}

ticks_to_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }'; }

# rss_kb PID: resident set of PID in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# anon_kb PID: the anonymous (private, not file-backed) part of PID's RSS in KiB.
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

# tree_rss_kb PID: resident set of PID and its live children (KiB).
tree_rss_kb() {
    local total child
    total=$(rss_kb "$1")
    for child in $(pgrep -P "$1" || true); do
        total=$((total + $(rss_kb "$child" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# start_nginx ROOT PORT: nginx serving ROOT on 127.0.0.1:PORT; sets NGINX_PID.
start_nginx() {
    need nginx nginx-light
    local conf=$BENCH_TMP/nginx-$2.conf
    cat >"$conf" <<EOF
daemon off;
worker_processes auto;
pid $BENCH_TMP/nginx-$2.pid;
error_log $BENCH_TMP/nginx-$2.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    types { application/json json; text/plain txt; }
    default_type application/octet-stream;
    client_body_temp_path $BENCH_TMP/nginx-body;
    proxy_temp_path $BENCH_TMP/nginx-proxy;
    fastcgi_temp_path $BENCH_TMP/nginx-fcgi;
    uwsgi_temp_path $BENCH_TMP/nginx-uwsgi;
    scgi_temp_path $BENCH_TMP/nginx-scgi;
    server {
        listen 127.0.0.1:$2;
        root $1;
    }
}
EOF
    nginx -c "$conf" -p "$BENCH_TMP" &
    NGINX_PID=$!
    BENCH_PIDS+=("$NGINX_PID")
    wait_port "$2"
}

# serve_jwks PORT: nginx serving the JWKS at /.well-known/jwks.json.
serve_jwks() {
    mkdir -p "$BENCH_TMP/jwks/.well-known"
    printf '%s' "$JWKS_BODY" >"$BENCH_TMP/jwks/.well-known/jwks.json"
    start_nginx "$BENCH_TMP/jwks" "$1"
    JWKS_PID=$NGINX_PID
}

pg_bin() {
    dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)"
}

# start_postgres PORT: a private cluster (trust auth, user postgres, run as
# the postgres user); sets PG_PID (the postmaster).
start_postgres() {
    local bin data=$BENCH_TMP/pg-$1
    bin=$(pg_bin)
    [[ -x $bin/initdb ]] || need pg_ctlcluster postgresql
    bin=$(pg_bin)
    install -d -o postgres -g postgres "$data" "$BENCH_TMP/pgsock"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
    BENCH_PG_DATAS+=("$data")
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$BENCH_TMP/pgsock/pg-$1.log" -w \
        -o "-p $1 -k $BENCH_TMP/pgsock -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    PG_PID=$(head -1 "$data/postmaster.pid")
}

# start_redis PORT: a private Redis without persistence; sets REDIS_PID.
start_redis() {
    need redis-server redis-server
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$BENCH_TMP" --daemonize no --loglevel warning >"$BENCH_TMP/redis-$1.log" 2>&1 &
    REDIS_PID=$!
    BENCH_PIDS+=("$REDIS_PID")
    wait_port "$1"
}

# reference_config LISTEN_PORT PG_PORT REDIS_PORT JWKS_PORT [INTERVAL] [BINARY]:
# writes config/warden.toml with its addresses pointed at the private servers
# (when given, every interval set to INTERVAL) and prints its path. Its plugin
# directory holds the four shipped plugins from beside BINARY (default
# $WARDEN), as a package installs them: the build directory also holds the
# test plugins, which would be loaded and counted too.
reference_config() {
    local out=$BENCH_TMP/warden-$1.toml plugins=$BENCH_TMP/plugins-$1 from
    from=$(dirname "${6:-$WARDEN}")
    mkdir -p "$plugins"
    for name in system postgres redis jwks; do
        cp "$from/libwarden_$name.so" "$plugins/"
    done
    # The reference config loads its example rules from beside itself.
    [[ -d $BENCH_TMP/rules ]] || cp -r "$BENCH_ROOT/config/rules" "$BENCH_TMP/rules"
    sed -e "s/^listen = .*/listen = \"127.0.0.1:$1\"/" \
        -e "s/^port = 5432/port = $2/" \
        -e "s#redis://127.0.0.1:6379/0#redis://127.0.0.1:$3/0#" \
        -e "s#http://127.0.0.1:8080/#http://127.0.0.1:$4/#" \
        -e "s#^dir = .*#dir = \"$plugins\"#" \
        -e "s#^beside_executable = .*#beside_executable = false#" \
        -e 's/^level = .*/level = "warn"/' \
        "$BENCH_ROOT/config/warden.toml" >"$out"
    if [[ -n ${5:-} && $5 != - ]]; then
        sed -i "s/^interval = .*/interval = \"$5\"/" "$out"
    fi
    echo "$out"
}

# start_warden CONFIG PORT [BINARY] [SECONDS]: sets WARDEN_PID; waits up to
# SECONDS (default 20) for the listener (a config of 100,000 checks takes a while).
start_warden() {
    "${3:-$WARDEN}" run --config "$1" >"$BENCH_TMP/warden-$2.log" 2>&1 &
    WARDEN_PID=$!
    BENCH_PIDS+=("$WARDEN_PID")
    wait_port "$2" "${4:-20}"
}
