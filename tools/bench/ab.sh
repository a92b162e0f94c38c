#!/usr/bin/env bash
# Co-scheduled A/B: two gateway commands share CPU 0, each loaded by its own wrk on CPU 1.
#
# On a busy VM, host speed drifts 20-50 % between runs, so two builds measured one after the other
# cannot be told apart by less than that. Here both run at the same time on the same core: the
# scheduler splits CPU 0 evenly between them (both are always runnable at saturation), so the ratio
# of their req/s is the inverse of their CPU cost per request, and host drift moves both alike.
# Differences of 2-3 % repeat from round to round. Only compare like with like: the two commands
# must have the same shape (both writing to a pipe, or both not), or the scheduler's view differs.
#
# usage: tools/bench/ab.sh 'ENV... node A/dist/src/server.js' 'ENV... node B/dist/src/server.js' [rounds] [seconds]
# Needs wrk, nginx and redis-server (apt-get install wrk nginx redis-server). Each command runs under
# `bash -c` with PORT, HOST, UPSTREAMS (3 nginx backends) and REDIS_URL (a private redis-server) set.
# Ports: backends 19001-19003, redis 16390, gateways 18091 (A) and 18092 (B).
set -euo pipefail
A="$1"; B="$2"; ROUNDS="${3:-3}"; SECS="${4:-12}"
for tool in wrk nginx redis-server taskset curl; do
  command -v "$tool" >/dev/null || { echo "ab.sh: missing $tool (apt-get install wrk nginx redis-server)" >&2; exit 1; }
done
RUN="$(mktemp -d /tmp/sluice-ab-XXXXXX)"
PIDS=()
GROUPS_=()
cleanup () {
  for g in "${GROUPS_[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  sleep 0.5
  for g in "${GROUPS_[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT

UPSTREAMS=""
for port in 19001 19002 19003; do
  mkdir -p "$RUN/tmp-$port"
  cat > "$RUN/backend-$port.conf" <<EOF
worker_processes 1;
pid $RUN/backend-$port.pid;
error_log $RUN/backend-$port.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $RUN/tmp-$port;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$port; location / { add_header X-Upstream $port; return 200 "ok"; } }
}
EOF
  taskset -c 1 nginx -p "$RUN" -c "$RUN/backend-$port.conf" -g 'daemon off;' & PIDS+=($!)
  UPSTREAMS+="${UPSTREAMS:+,}http://127.0.0.1:$port"
done
taskset -c 1 redis-server --port 16390 --bind 127.0.0.1 --save '' --appendonly no > "$RUN/redis.log" & PIDS+=($!)
sleep 1

start () { # start COMMAND PORT NAME: the command alone in a new process group on CPU 0
  PORT="$2" HOST=127.0.0.1 UPSTREAMS="$UPSTREAMS" REDIS_URL=redis://127.0.0.1:16390 \
    setsid taskset -c 0 bash -c "$1" > "$RUN/$3.log" 2>&1 &
  GROUPS_+=($!)
}
start "$A" 18091 A
start "$B" 18092 B
for port in 18091 18092; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "ab.sh: the gateway on $port does not answer GET / with 2xx" >&2; cat "$RUN"/*.log >&2; exit 1; }
done
# per-process-group fairness (autogroup) would split CPU 0 by session, not by process
if [ -w /proc/sys/kernel/sched_autogroup_enabled ] && [ "$(cat /proc/sys/kernel/sched_autogroup_enabled)" = 1 ]; then
  echo "ab.sh: note: sched_autogroup is on; commands of different shapes (a pipe in one only) then get unequal shares" >&2
fi

load () { taskset -c 1 wrk -t1 -c50 -d"$2"s --latency "http://127.0.0.1:$1/"; }
# warm-up: a fresh Node process runs at half speed until its hot paths are compiled
load 18091 5 > /dev/null & w=$!; load 18092 5 > /dev/null; wait $w; sleep 1
printf 'round\tA req/s\tA p99\tB req/s\tB p99\tB/A\n'
for r in $(seq "$ROUNDS"); do
  load 18091 "$SECS" > "$RUN/a$r.txt" & wa=$!
  load 18092 "$SECS" > "$RUN/b$r.txt" & wb=$!
  wait $wa $wb
  ra=$(awk '/Requests\/sec/{print $2}' "$RUN/a$r.txt"); rb=$(awk '/Requests\/sec/{print $2}' "$RUN/b$r.txt")
  pa=$(awk '$1=="99%"{print $2}' "$RUN/a$r.txt"); pb=$(awk '$1=="99%"{print $2}' "$RUN/b$r.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$ra" "$pa" "$rb" "$pb" "$(awk -v a="$ra" -v b="$rb" 'BEGIN{printf "%.3f", b/a}')"
done
