#!/usr/bin/env bash
# bench/http.sh: requests per second and latency of Warden's /readyz, /health
# and /metrics (reference config, private PostgreSQL, Redis and JWKS server)
# next to nginx serving static files of the same sizes.
#
# Usage: bench/http.sh [DURATION]   (wrk duration per run, default 10s)
# WARDEN=path picks the binary; WARDEN_BEFORE=path also runs an earlier build
# side by side (same servers, same load), for before/after figures.
# Prints a Markdown table on stdout; progress on stderr.

source "$(dirname "$0")/lib.sh"
DURATION=${1:-10s}
need wrk wrk
need curl curl
need_warden

pg=$(free_port); start_postgres "$pg"
redis=$(free_port); start_redis "$redis"
jwks=$(free_port); serve_jwks "$jwks"
port=$(free_port)
config=$(reference_config "$port" "$pg" "$redis" "$jwks")
start_warden "$config" "$port"
wait_http "http://127.0.0.1:$port/readyz"
if [[ -n ${WARDEN_BEFORE:-} ]]; then
    before_port=$(free_port)
    start_warden "$(reference_config "$before_port" "$pg" "$redis" "$jwks" - "$WARDEN_BEFORE")" \
        "$before_port" "$WARDEN_BEFORE"
    wait_http "http://127.0.0.1:$before_port/readyz"
fi
sleep 1

# Static files of the sizes Warden answers with.
static=$BENCH_TMP/static
mkdir -p "$static"
health_size=$(curl -s "http://127.0.0.1:$port/health" | wc -c)
metrics_size=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
metrics_gz=$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics" | wc -c)
head -c "$health_size" /dev/zero | tr '\0' 'x' >"$static/health.json"
head -c "$metrics_size" /dev/zero | tr '\0' 'x' >"$static/metrics.txt"
static_port=$(free_port)
start_nginx "$static" "$static_port"

echo "Machine: $(machine)"
echo
echo "Sizes: /health $health_size B, /metrics $metrics_size B ($metrics_gz B when gzip is asked for)"
echo
echo "| target | c | req/s | p50 | p99 | load |"
echo "| --- | --- | --- | --- | --- | --- |"

# run NAME CONNECTIONS URL [HEADER]: one wrk run, one table row.
run() {
    local name=$1 c=$2 url=$3 out load
    local args=(-t1 "-c$c" "-d$DURATION" --latency)
    [[ -n ${4:-} ]] && args+=(-H "$4")
    load=$(loadavg)
    log "wrk ${args[*]} $url"
    out=$(wrk "${args[@]}" "$url")
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print " (" $NF " non-2xx)"}' <<<"$out")
    echo "| $name | $c | $rps$non2xx | $p50 | $p99 | $load |"
}

w=http://127.0.0.1:$port
b=http://127.0.0.1:${before_port:-0}
n=http://127.0.0.1:$static_port
for c in 8 64; do
    # Warden and its reference side by side, so both see the same load.
    run "warden /readyz" "$c" "$w/readyz"
    [[ -n ${WARDEN_BEFORE:-} ]] && run "warden before /readyz" "$c" "$b/readyz"
    run "warden /health" "$c" "$w/health"
    [[ -n ${WARDEN_BEFORE:-} ]] && run "warden before /health" "$c" "$b/health"
    run "nginx static, /health's size" "$c" "$n/health.json"
    run "warden /metrics" "$c" "$w/metrics"
    run "warden /metrics, gzip" "$c" "$w/metrics" "Accept-Encoding: gzip"
    [[ -n ${WARDEN_BEFORE:-} ]] && run "warden before /metrics" "$c" "$b/metrics"
    run "nginx static, /metrics' size" "$c" "$n/metrics.txt"
done
echo
echo "Command: bench/http.sh $DURATION (wrk -t1 -c{8,64} -d$DURATION --latency)"
