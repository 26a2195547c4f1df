#!/usr/bin/env bash
# bench/detection.sh: how long from stopping a private Redis until /readyz
# answers 503 and until a webhook receiver gets the alert, for several
# interval, timeout and `for` settings, next to the bound
# interval + timeout + for + evaluation interval.
#
# Usage: bench/detection.sh [SETTINGS...]
#   each setting is INTERVAL,TIMEOUT,FOR; default: 1s,500ms,0s 2s,1s,3s 5s,2s,10s
# Prints a Markdown table on stdout; progress on stderr.

source "$(dirname "$0")/lib.sh"
SETTINGS=("$@")
((${#SETTINGS[@]})) || SETTINGS=(1s,500ms,0s 2s,1s,3s 5s,2s,10s)
EVAL=1s
need curl curl
need redis-server redis-server
need_warden

# The webhook receiver: appends the arrival time of every POST to a file.
cat >"$BENCH_TMP/receiver.py" <<'EOF'
import http.server, sys, time
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(sys.argv[2], "a") as out:
            out.write("%.3f %d\n" % (time.time(), b'"firing"' in body))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
EOF
hook=$(free_port)
python3 "$BENCH_TMP/receiver.py" "$hook" "$BENCH_TMP/hook.log" &
BENCH_PIDS+=("$!")
wait_port "$hook"

secs() { # a duration like 500ms, 2s, 1m in seconds
    awk -v d="$1" 'BEGIN { v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /m$/) v *= 60; print v }'
}
now() { date +%s.%N; }

echo "Machine: $(machine)"
echo
echo "| interval | timeout | for | /readyz 503 after (s) | alert received after (s) | bound: interval + timeout + for + eval (s) | load |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for setting in "${SETTINGS[@]}"; do
    IFS=, read -r interval timeout for <<<"$setting"
    rport=$(free_port); start_redis "$rport"
    port=$(free_port)
    cfg=$BENCH_TMP/detect-$port.toml
    cat >"$cfg" <<EOF
[server]
listen = "127.0.0.1:$port"
[plugins]
dir = "$(dirname "$WARDEN")"
beside_executable = false
[log]
level = "warn"
[alerting]
evaluation_interval = "$EVAL"
[[check]]
name = "cache"
plugin = "redis"
interval = "$interval"
timeout = "$timeout"
critical = true
[check.config]
url = "redis://127.0.0.1:$rport/0"
[[rule]]
name = "CacheDown"
expr = 'warden_check_up{check="cache"} == 0'
for = "$for"
severity = "critical"
[[notifier]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:$hook/"
[[route]]
notifiers = ["hook"]
EOF
    start_warden "$cfg" "$port"
    wait_http "http://127.0.0.1:$port/readyz"
    sleep "$(secs "$interval")"
    : >"$BENCH_TMP/hook.log"
    load=$(loadavg)
    t0=$(now)
    kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
    ready=- alert=-
    bound=$(awk -v a="$(secs "$interval")" -v b="$(secs "$timeout")" -v c="$(secs "$for")" -v d="$(secs "$EVAL")" 'BEGIN { print a + b + c + d }')
    deadline=$(awk -v t="$t0" -v b="$bound" 'BEGIN { print t + 3 * b + 30 }')
    # Bounded poll: 10 ms steps until both happened or 3 bounds + 30 s passed.
    while [[ $ready == - || $alert == - ]] && awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n < d) }'; do
        if [[ $ready == - && $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz") == 503 ]]; then
            ready=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
        fi
        if [[ $alert == - ]] && grep -q ' 1$' "$BENCH_TMP/hook.log"; then
            alert=$(awk -v a="$t0" '/ 1$/ { printf "%.2f", $1 - a; exit }' "$BENCH_TMP/hook.log")
        fi
        sleep 0.01
    done
    echo "| $interval | $timeout | $for | $ready | $alert | $bound | $load |"
    kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true
done
echo
echo "Command: bench/detection.sh ${SETTINGS[*]} (evaluation_interval $EVAL, fall 1)"
