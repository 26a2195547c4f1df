#!/usr/bin/env bash
# bench/footprint.sh: memory and CPU of Warden next to what users run today
# for the same four checks: Debian's node, postgres, redis and blackbox
# exporters (the blackbox exporter probing the same JWKS), and monit.
#
# Each monitor watches its own private PostgreSQL and Redis, so the CPU those
# servers spend on being monitored is measured separately for each (a fourth,
# unmonitored pair gives the baseline to subtract).
#
# Phase 1, DURATION seconds: checks every 10 s, every /metrics (and the
# blackbox probe) scraped every 10 s; CPU of every process over the phase.
# Phase 2: SCRAPES scrapes of each endpoint in a fast bounded loop over one
# keep-alive connection, half plain and half with Accept-Encoding: gzip; CPU
# per 1,000 scrapes and RSS after. Phase 3: scrapes spaced as Prometheus
# spaces them, the same way for every endpoint; CPU per scrape.
#
# Usage: bench/footprint.sh [DURATION] [SCRAPES]   (defaults 600 and 2000)

source "$(dirname "$0")/lib.sh"
DURATION=${1:-600}
SCRAPES=${2:-2000}
need curl curl
need prometheus-node-exporter prometheus-node-exporter
need prometheus-postgres-exporter prometheus-postgres-exporter
need prometheus-redis-exporter prometheus-redis-exporter
need prometheus-blackbox-exporter prometheus-blackbox-exporter
need monit monit
need_warden

jwks=$(free_port); serve_jwks "$jwks"
declare -A PG REDIS PGPORT REDISPORT
for who in warden exporters monit idle; do
    PGPORT[$who]=$(free_port); start_postgres "${PGPORT[$who]}"; PG[$who]=$PG_PID
    REDISPORT[$who]=$(free_port); start_redis "${REDISPORT[$who]}"; REDIS[$who]=$REDIS_PID
done

declare -A PID URL
# Warden, the reference config with every check at 10 s.
wport=$(free_port)
cfg=$(reference_config "$wport" "${PGPORT[warden]}" "${REDISPORT[warden]}" "$jwks" 10s)
start_warden "$cfg" "$wport"
PID[warden]=$WARDEN_PID; URL[warden]=http://127.0.0.1:$wport/metrics

# spawn NAME PORT PATH COMMAND...: an exporter in the background.
spawn() {
    local name=$1 port=$2 path=$3
    shift 3
    "$@" >"$BENCH_TMP/$name.log" 2>&1 &
    PID[$name]=$!; BENCH_PIDS+=("$!"); URL[$name]=http://127.0.0.1:$port$path
    wait_port "$port"
}
p=$(free_port); spawn node "$p" /metrics prometheus-node-exporter --web.listen-address="127.0.0.1:$p"
p=$(free_port)
DATA_SOURCE_NAME="postgresql://postgres@127.0.0.1:${PGPORT[exporters]}/postgres?sslmode=disable" \
    spawn postgres "$p" /metrics prometheus-postgres-exporter --web.listen-address="127.0.0.1:$p"
p=$(free_port)
spawn redis "$p" /metrics prometheus-redis-exporter -redis.addr "redis://127.0.0.1:${REDISPORT[exporters]}" \
    -web.listen-address "127.0.0.1:$p"
cat >"$BENCH_TMP/blackbox.yml" <<EOF
modules:
  jwks:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp: ['"keys"']
EOF
p=$(free_port)
spawn blackbox "$p" "/probe?module=jwks&target=http://127.0.0.1:$jwks/.well-known/jwks.json" \
    prometheus-blackbox-exporter --config.file="$BENCH_TMP/blackbox.yml" --web.listen-address="127.0.0.1:$p"

# monit: the same four checks every 10 s, no web interface.
cat >"$BENCH_TMP/monitrc" <<EOF
set daemon 10
set logfile $BENCH_TMP/monit.log
set idfile $BENCH_TMP/monit.id
set statefile $BENCH_TMP/monit.state
set pidfile $BENCH_TMP/monit.pid
check host db with address 127.0.0.1
    if failed port ${PGPORT[monit]} protocol pgsql then alert
check host cache with address 127.0.0.1
    if failed port ${REDISPORT[monit]} protocol redis then alert
check host auth with address 127.0.0.1
    if failed port $jwks protocol http request "/.well-known/jwks.json" content = "keys" then alert
check system localhost
    if memory usage > 85% then alert
    if loadavg (1min) > 8 then alert
check filesystem root with path /
    if space usage > 90% then alert
EOF
chmod 600 "$BENCH_TMP/monitrc"
monit -I -c "$BENCH_TMP/monitrc" >"$BENCH_TMP/monit.out" 2>&1 &
PID[monit]=$!; BENCH_PIDS+=("$!")

wait_http "http://127.0.0.1:$wport/readyz"
sleep 2
for name in node postgres redis blackbox; do
    curl -sf -o /dev/null "${URL[$name]}" || { echo "$name: ${URL[$name]} does not answer" >&2; exit 1; }
done

ALL=(warden node postgres redis blackbox monit)
declare -A C0 C1 RSS_IDLE S0 S1
snapshot() { # ARRAY-NAME: CPU ticks of every monitor and every server
    local -n into=$1
    local who
    for who in "${ALL[@]}"; do into[$who]=$(cpu_ticks "${PID[$who]}"); done
    for who in warden exporters monit idle; do
        into[pg-$who]=$(tree_ticks "${PG[$who]}")
        into[redis-$who]=$(cpu_ticks "${REDIS[$who]}")
    done
}

echo "Machine: $(machine)"
echo
log "phase 1: ${DURATION}s, scrapes every 10 s"
load1=$(loadavg)
snapshot C0
end=$((SECONDS + DURATION))
while ((SECONDS < end)); do
    for name in warden node postgres redis blackbox; do
        curl -s -o /dev/null -H 'Accept-Encoding: gzip' "${URL[$name]}" || true
    done
    sleep 10
done
snapshot C1
for who in "${ALL[@]}"; do RSS_IDLE[$who]=$(rss_kb "${PID[$who]}"); done

# scrape NAME N GZIP: N scrapes over one connection (curl -K with N urls).
scrape() {
    local list=$BENCH_TMP/urls-$1 i
    : >"$list"
    for ((i = 0; i < $2; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "${URL[$1]}" >>"$list"; done
    if [[ $3 == gzip ]]; then
        timeout 600 curl -s -H 'Accept-Encoding: gzip' -K "$list" || true
    else
        timeout 600 curl -s -K "$list" || true
    fi
}
# per_k TICKS N: seconds per 1,000 of N events.
per_k() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz * 1000 / n }'; }
log "phase 2: $SCRAPES scrapes of each endpoint"
declare -A PLAIN GZIP PG_SCRAPE REDIS_SCRAPE RSS_LOAD ANON_LOAD
load2=$(loadavg)
half=$((SCRAPES / 2))
for name in warden node postgres redis blackbox; do
    case $name in
        postgres) server=exporters ;; redis) server=exporters ;; warden) server=warden ;; *) server= ;;
    esac
    a=$(cpu_ticks "${PID[$name]}")
    [[ -n $server ]] && { pa=$(tree_ticks "${PG[$server]}"); ra=$(cpu_ticks "${REDIS[$server]}"); }
    scrape "$name" "$half" plain
    b=$(cpu_ticks "${PID[$name]}")
    scrape "$name" "$half" gzip
    c=$(cpu_ticks "${PID[$name]}")
    if [[ -n $server ]]; then
        pb=$(tree_ticks "${PG[$server]}"); rb=$(cpu_ticks "${REDIS[$server]}")
        PG_SCRAPE[$name]=$(per_k $((pb - pa)) "$SCRAPES")
        REDIS_SCRAPE[$name]=$(per_k $((rb - ra)) "$SCRAPES")
    fi
    PLAIN[$name]=$(per_k $((b - a)) "$half")
    GZIP[$name]=$(per_k $((c - b)) "$half")
    RSS_LOAD[$name]=$(rss_kb "${PID[$name]}")
    ANON_LOAD[$name]=$(anon_kb "${PID[$name]}")
done
RSS_LOAD[monit]=$(rss_kb "${PID[monit]}")
ANON_LOAD[monit]=$(anon_kb "${PID[monit]}")

# A fast loop mostly hits Warden's rendering of the current second, while the
# exporters work on every scrape. What one scrape costs as Prometheus makes
# it (every few seconds, over a kept connection, gzip accepted) is measured
# alike for every endpoint: FRESH scrapes 1.1 s apart (curl --rate), minus
# the process's own CPU over as long a quiet spell measured just before.
FRESH=${FRESH:-20}
SPELL=$(awk -v n="$FRESH" 'BEGIN { print n * 1.1 }')
declare -A SPACED
log "spaced scrapes: $FRESH per endpoint, 1.1 s apart, each after as long idle"
for name in warden node postgres redis blackbox; do
    list=$BENCH_TMP/spaced-$name
    : >"$list"
    for ((i = 0; i < FRESH; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "${URL[$name]}" >>"$list"; done
    i0=$(sched_ns "${PID[$name]}"); sleep "$SPELL"; i1=$(sched_ns "${PID[$name]}")
    s0=$(sched_ns "${PID[$name]}")
    timeout 120 curl -s --rate 54/m -H 'Accept-Encoding: gzip' -K "$list" || true
    s1=$(sched_ns "${PID[$name]}")
    SPACED[$name]=$(awk -v s="$((s1 - s0 - (i1 - i0)))" -v n="$FRESH" 'BEGIN { printf "%.3f", s / n / 1e6 }')
done

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "Phase 1: ${DURATION} s, checks and scrapes every 10 s (load at start $load1, at end $(loadavg)); phase 2: $SCRAPES scrapes each (load at start $load2)"
echo
echo "| process | RSS idle (MiB) | RSS after scrapes (MiB) | of which anonymous (MiB) | CPU s in phase 1 | CPU s per 1,000 scrapes, plain | gzip |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
sum_idle=0; sum_load=0; sum_cpu=0; sum_anon=0
for who in "${ALL[@]}"; do
    cpu=$(ticks_to_s $((C1[$who] - C0[$who])))
    echo "| $who | $(mib "${RSS_IDLE[$who]}") | $(mib "${RSS_LOAD[$who]}") | $(mib "${ANON_LOAD[$who]}") | $cpu | ${PLAIN[$who]:--} | ${GZIP[$who]:--} |"
    if [[ $who != warden && $who != monit ]]; then
        sum_idle=$((sum_idle + RSS_IDLE[$who])); sum_load=$((sum_load + RSS_LOAD[$who]))
        sum_anon=$((sum_anon + ANON_LOAD[$who]))
        sum_cpu=$((sum_cpu + C1[$who] - C0[$who]))
    fi
done
echo "| four exporters | $(mib $sum_idle) | $(mib $sum_load) | $(mib $sum_anon) | $(ticks_to_s $sum_cpu) | | |"
echo
echo "CPU per scrape made as Prometheus makes it ($FRESH scrapes 1.1 s apart over one connection, gzip accepted, the process's idle CPU over as long subtracted), ms:"
echo
echo "| scraped | CPU per scrape (ms) |"
echo "| --- | --- |"
for name in warden node postgres redis blackbox; do echo "| $name | ${SPACED[$name]} |"; done
echo
echo "CPU the monitored servers spent in phase 1, seconds (idle pair: the baseline of an unmonitored server):"
echo
echo "| monitored by | PostgreSQL | Redis |"
echo "| --- | --- | --- |"
for who in warden exporters monit idle; do
    echo "| $who | $(ticks_to_s $((C1[pg-$who] - C0[pg-$who]))) | $(ticks_to_s $((C1[redis-$who] - C0[redis-$who]))) |"
done
echo
echo "Server CPU per 1,000 scrapes in phase 2, seconds (Warden answers from its last check results):"
echo
echo "| scraped | PostgreSQL | Redis |"
echo "| --- | --- | --- |"
echo "| warden | ${PG_SCRAPE[warden]} | ${REDIS_SCRAPE[warden]} |"
echo "| postgres exporter | ${PG_SCRAPE[postgres]} | - |"
echo "| redis exporter | - | ${REDIS_SCRAPE[redis]} |"
echo
echo "Command: bench/footprint.sh $DURATION $SCRAPES"
