#!/usr/bin/env bash
# bench/check-cost.sh: CPU of one PostgreSQL and one Redis check run by
# Warden (a config with that one check every 100 ms) next to `pg_isready` and
# `redis-cli ping` run as processes by hyperfine, each with the CPU the
# monitored server spends answering (private servers; their idle CPU over the
# same time is subtracted); and the daemon's floor, a check of the noop test
# plugin on the same schedule.
#
# Usage: bench/check-cost.sh [SECONDS] [RUNS]   (defaults 30 and 300)
# Prints a Markdown table on stdout; progress on stderr.

source "$(dirname "$0")/lib.sh"
SECS=${1:-30}
RUNS=${2:-300}
need curl curl
need hyperfine hyperfine
need pg_isready postgresql-client
need redis-cli redis-tools
need_warden

pg=$(free_port); start_postgres "$pg"
redis=$(free_port); start_redis "$redis"

# Idle CPU of each server per second, to subtract.
log "idle servers for ${SECS}s"
pa=$(tree_ticks "$PG_PID"); ra=$(cpu_ticks "$REDIS_PID")
sleep "$SECS"
pg_idle=$(( $(tree_ticks "$PG_PID") - pa )); redis_idle=$(( $(cpu_ticks "$REDIS_PID") - ra ))

# per_run TICKS RUNS: milliseconds of CPU per run.
per_run() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz * 1000 / n }'; }
runs_total() { # PORT: runs of every check so far
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^warden_check_runs_total/ { s += $NF } END { print s + 0 }'
}

# warden_cost NAME PLUGIN CONFIG-LINES: "daemon_ms server_ms runs" per run.
warden_cost() {
    local port cfg
    port=$(free_port)
    cfg=$BENCH_TMP/cost-$1.toml
    cat >"$cfg" <<EOF
[server]
listen = "127.0.0.1:$port"
[plugins]
dir = "$(dirname "$WARDEN")"
beside_executable = false
[log]
level = "warn"
[[check]]
name = "$1"
plugin = "$2"
interval = "100ms"
timeout = "90ms"
[check.config]
$3
EOF
    start_warden "$cfg" "$port"
    wait_http "http://127.0.0.1:$port/readyz"
    sleep 1
    local w0 s0 n0 w1 s1 n1 server_pid=$4 ticks=$5
    n0=$(runs_total "$port"); w0=$(cpu_ticks "$WARDEN_PID"); s0=$($ticks "$server_pid")
    sleep "$SECS"
    n1=$(runs_total "$port"); w1=$(cpu_ticks "$WARDEN_PID"); s1=$($ticks "$server_pid")
    kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true
    echo "$((w1 - w0)) $((s1 - s0)) $((n1 - n0))"
}

# process_cost COMMAND SERVER_PID TICKS_FN: "client_ms server_ticks" per run.
process_cost() {
    local s0 s1 json=$BENCH_TMP/hyperfine.json
    s0=$($3 "$2")
    hyperfine -N --style none --warmup 5 --runs "$RUNS" --export-json "$json" "$1" >/dev/null
    s1=$($3 "$2")
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f %.3f" % ((r["user"] + r["system"]) * 1000, r["mean"] * 1000))' "$json"
    echo "$((s1 - s0))"
}

echo "Machine: $(machine)"
echo
echo "| check | client CPU per run (ms) | server CPU per run (ms) | total (ms) | wall per run (ms) | load |"
echo "| --- | --- | --- | --- | --- | --- |"
load=$(loadavg)
read -r wt st n < <(warden_cost db postgres "host = \"127.0.0.1\"
port = $pg
user = \"postgres\"
dbname = \"postgres\"
sslmode = \"disable\"" "$PG_PID" tree_ticks)
server=$(( st - pg_idle ))
echo "| warden postgres check ($n runs) | $(per_run "$wt" "$n") | $(per_run "$((server < 0 ? 0 : server))" "$n") | $(per_run "$((wt + (server < 0 ? 0 : server)))" "$n") | - | $load |"
load=$(loadavg)
{ read -r client wall; read -r st; } < <(process_cost "pg_isready -q -h 127.0.0.1 -p $pg" "$PG_PID" tree_ticks)
idle=$(awk -v i="$pg_idle" -v r="$RUNS" -v s="$SECS" -v w="$wall" 'BEGIN { printf "%d", i * (r * w / 1000) / s }')
server=$(per_run "$((st - idle > 0 ? st - idle : 0))" "$RUNS")
echo "| pg_isready ($RUNS runs) | $client | $server | $(awk -v a="$client" -v b="$server" 'BEGIN { printf "%.3f", a + b }') | $wall | $load |"

load=$(loadavg)
read -r wt st n < <(warden_cost cache redis "url = \"redis://127.0.0.1:$redis/0\"" "$REDIS_PID" cpu_ticks)
server=$(( st - redis_idle ))
echo "| warden redis check ($n runs) | $(per_run "$wt" "$n") | $(per_run "$((server < 0 ? 0 : server))" "$n") | $(per_run "$((wt + (server < 0 ? 0 : server)))" "$n") | - | $load |"
load=$(loadavg)
{ read -r client wall; read -r st; } < <(process_cost "redis-cli -h 127.0.0.1 -p $redis ping" "$REDIS_PID" cpu_ticks)
idle=$(awk -v i="$redis_idle" -v r="$RUNS" -v s="$SECS" -v w="$wall" 'BEGIN { printf "%d", i * (r * w / 1000) / s }')
server=$(per_run "$((st - idle > 0 ? st - idle : 0))" "$RUNS")
echo "| redis-cli ping ($RUNS runs) | $client | $server | $(awk -v a="$client" -v b="$server" 'BEGIN { printf "%.3f", a + b }') | $wall | $load |"
# The daemon's own share: the same schedule running the noop test plugin,
# which returns at once (scheduling, the call, recording).
load=$(loadavg)
read -r wt st n < <(warden_cost floor noop "" "$REDIS_PID" cpu_ticks)
echo "| warden noop check, the daemon's floor ($n runs) | $(per_run "$wt" "$n") | - | $(per_run "$wt" "$n") | - | $load |"
echo
echo "Warden's figures include everything the daemon does meanwhile (scheduler, heartbeat, one /metrics read at each end)."
echo "Command: bench/check-cost.sh $SECS $RUNS"
