#!/usr/bin/env bash
# bench/rss.sh: where Warden's resident memory is, for one or more builds:
# the reference config with the four shipped plugins (private PostgreSQL,
# Redis and JWKS server), WAIT seconds of checks at 10 s, then SCRAPES
# scrapes of /metrics; RSS from /proc/PID/status split into anonymous,
# file-backed and shared memory, and per mapped file from /proc/PID/smaps.
#
# Usage: bench/rss.sh [BINARY...]   (default $WARDEN or target/release/warden)
# WAIT (default 25) and SCRAPES (default 200) are read from the environment.

source "$(dirname "$0")/lib.sh"
WAIT=${WAIT:-25}
SCRAPES=${SCRAPES:-200}
need curl curl
need_warden
(($#)) || set -- "$WARDEN"

jwks=$(free_port); serve_jwks "$jwks"
pg=$(free_port); start_postgres "$pg"
redis=$(free_port); start_redis "$redis"

echo "Machine: $(machine)"
for binary in "$@"; do
    port=$(free_port)
    start_warden "$(reference_config "$port" "$pg" "$redis" "$jwks" 10s "$binary")" "$port" "$binary"
    wait_http "http://127.0.0.1:$port/readyz"
    sleep "$WAIT"
    for ((i = 0; i < SCRAPES; i++)); do curl -s -o /dev/null "http://127.0.0.1:$port/metrics"; done
    echo
    echo "$binary (load $(loadavg)):"
    echo
    awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ { printf "- %s %.1f MiB\n", $1, $2 / 1024 }' "/proc/$WARDEN_PID/status"
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 == "" ? "[anonymous]" : $6 }
         /^Rss:/ { rss[name] += $2 }
         END { for (n in rss) if (rss[n] >= 100) printf "%.1f MiB %s\n", rss[n] / 1024, n }' \
        "/proc/$WARDEN_PID/smaps" | sort -rn | sed 's/^/    /'
    kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true
done
echo
echo "Command: bench/rss.sh $*"
