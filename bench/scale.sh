#!/usr/bin/env bash
# bench/scale.sh: how Warden grows with the number of checks and rules.
#
# For each N in COUNTS: N checks of the noop test plugin at a 10 s interval;
# after every check has run once, WINDOW seconds of measurement: CPU, RSS, how
# late checks start (warden_check_start_delay_seconds), /metrics size and
# time. Then RULES rules over about SERIES series: CPU per evaluation cycle
# (CPU with the rules minus CPU without, per cycle), RSS and the rule store's
# own gauges.
#
# Usage: bench/scale.sh [COUNTS] [WINDOW] [RULES]
#   defaults: "10 100 1000 10000 100000" 30 1000
# WARDEN=path picks the binary (default target/release/warden).

source "$(dirname "$0")/lib.sh"
COUNTS=${1:-10 100 1000 10000 100000}
WINDOW=${2:-30}
RULES=${3:-1000}
need curl curl
need_warden

# config PORT N [RULES] [EVAL]: N noop checks, optionally RULES rules.
config() {
    local out=$BENCH_TMP/scale-$1.toml
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\n' "$1"
        printf '[plugins]\ndir = "%s"\nbeside_executable = false\n' "$(dirname "$WARDEN")"
        printf '[log]\nlevel = "warn"\n'
        if [[ -n ${3:-} ]]; then
            printf '[alerting]\nevaluation_interval = "%s"\nmax_series = 100000\n' "$4"
        fi
        awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++)
            printf "[[check]]\nname = \"c%d\"\nplugin = \"noop\"\ninterval = \"10s\"\ntimeout = \"5s\"\n[check.config]\n", i }'
        if [[ -n ${3:-} ]]; then
            awk -v r="$3" -v n="$2" 'BEGIN { for (i = 0; i < r; i++)
                printf "[[rule]]\nname = \"R%d\"\nexpr = '"'"'warden_check_up{check=\"c%d\"} == 0 or warden_check_status{check=\"c%d\"} > 1'"'"'\nfor = \"1m\"\n", i, i % n, (i * 7) % n }'
        fi
    } >"$out"
    echo "$out"
}

# quantile Q METRICS_FILE: upper bound of the start-delay bucket holding Q.
quantile() {
    awk -v q="$1" '
        /^warden_check_start_delay_seconds_bucket/ {
            match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            n++; bound[n] = le; count[n] = $NF
        }
        END {
            total = count[n]
            if (total == 0) { print "-"; exit }
            for (i = 1; i <= n; i++) if (count[i] >= q * total) { print (bound[i] == "+Inf" ? ">5" : "<=" bound[i]); exit }
        }' "$2"
}

# metrics_time URL: median of 5 /metrics fetches, in ms.
metrics_time() {
    for _ in 1 2 3 4 5; do
        curl -s -o /dev/null -w '%{time_total}\n' "$1"
    done | sort -n | awk 'NR == 3 { printf "%.1f", $1 * 1000 }'
}

echo "Machine: $(machine)"
echo "Binary: $WARDEN"
echo
echo "| checks | ready after | CPU per 10 s interval | RSS | start delay p50 | p99 | max | /metrics size | /metrics time | load |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in $COUNTS; do
    port=$(free_port)
    cfg=$(config "$port" "$n")
    t0=$(date +%s.%N)
    if ! start_warden "$cfg" "$port" "$WARDEN" 600; then
        echo "| $n | not listening in 600 s | | | | | | | | $(loadavg) |"
        kill "$WARDEN_PID" 2>/dev/null; wait "$WARDEN_PID" 2>/dev/null || true
        continue
    fi
    # Bounded: every check has a result within its 2 s offset plus a run;
    # give big sets up to 10 minutes.
    if ! timeout 600 bash -c "until [[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/readyz) == 200 ]]; do sleep 0.5; done"; then
        echo "| $n | not ready in 600 s | | | | | | | | $(loadavg) |"
        kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true
        continue
    fi
    ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')
    load=$(loadavg)
    c0=$(cpu_ticks "$WARDEN_PID")
    sleep "$WINDOW"
    c1=$(cpu_ticks "$WARDEN_PID")
    rss=$(rss_kb "$WARDEN_PID")
    curl -s "http://127.0.0.1:$port/metrics" >"$BENCH_TMP/m-$n.txt"
    size=$(wc -c <"$BENCH_TMP/m-$n.txt")
    mtime=$(metrics_time "http://127.0.0.1:$port/metrics?x")
    cpu=$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v w="$WINDOW" 'BEGIN { printf "%.3f s", d / hz * 10 / w }')
    echo "| $n | $ready | $cpu | $((rss / 1024)) MiB | $(quantile 0.5 "$BENCH_TMP/m-$n.txt") | $(quantile 0.99 "$BENCH_TMP/m-$n.txt") | $(quantile 1 "$BENCH_TMP/m-$n.txt") | $((size / 1024)) KiB | $mtime ms | $load |"
    kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true
done

# Rules: RULES rules over the series of CHECKS checks (each check shows about
# 25 series: up, status, stale, last run, 6 run counters, a 16-line histogram).
CHECKS=${RULE_CHECKS:-400}
EVAL=5s
echo
echo "| rules | checks | series held | store bytes | CPU per evaluation cycle | RSS with rules | RSS without | load |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
measure() { # PORT CONFIG -> "ticks rss" over WINDOW after ready
    start_warden "$2" "$1"
    timeout 300 bash -c "until [[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$1/readyz) == 200 ]]; do sleep 0.5; done"
    sleep 6 # the first evaluation waits for every check's first result
    local c0 c1
    c0=$(cpu_ticks "$WARDEN_PID")
    sleep "$WINDOW"
    c1=$(cpu_ticks "$WARDEN_PID")
    curl -s "http://127.0.0.1:$1/metrics" >"$BENCH_TMP/rules-$1.txt"
    echo "$((c1 - c0)) $(rss_kb "$WARDEN_PID")"
    kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true
}
load=$(loadavg)
p1=$(free_port); read -r base_ticks base_rss < <(measure "$p1" "$(config "$p1" "$CHECKS")")
p2=$(free_port); read -r rule_ticks rule_rss < <(measure "$p2" "$(config "$p2" "$CHECKS" "$RULES" "$EVAL")")
series=$(awk '/^warden_rule_series / {print $2}' "$BENCH_TMP/rules-$p2.txt")
bytes=$(awk '/^warden_rule_store_bytes / {print $2}' "$BENCH_TMP/rules-$p2.txt")
per_cycle=$(awk -v d="$((rule_ticks - base_ticks))" -v hz="$CLK_TCK" -v w="$WINDOW" 'BEGIN { printf "%.1f ms", d / hz * 1000 / (w / 5) }')
echo "| $RULES | $CHECKS | $series | $bytes | $per_cycle | $((rule_rss / 1024)) MiB | $((base_rss / 1024)) MiB | $load |"
echo
echo "Command: bench/scale.sh \"$COUNTS\" $WINDOW $RULES"
