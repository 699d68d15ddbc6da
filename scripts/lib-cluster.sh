# Shared by the cluster benchmarks: start sonaed nodes on 127.0.0.x with one
# port, and wait for them. The caller sets port, work (a scratch directory),
# ENGINE, and the array pids (killed by the caller's cleanup).

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ready() { # HOST: wait until cluster_info says ready
  for _ in $(seq 1 600); do
    if python3 - "$1" "$port" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.sendall(b"cluster_info\r\n")
sys.exit(0 if b'"ready":true' in s.recv(4096) else 1)
PY
    sleep 0.1
  done
  echo "$0: $1 not ready" >&2; return 1
}

settled() { # HOST: true when nothing lags, is short or moves, and every position is balanced
  local out
  out=$(bin/sonae -s "$1:$port" stat 'routing\.(lagging_replicas|short_vnodes|moving_vnodes|balanced)$' 2>/dev/null || true)
  [ "$(echo "$out" | awk '$2 != "0" && $2 != "true"' | wc -l)" -eq 0 ] && [ "$(echo "$out" | wc -l)" -eq 4 ]
}

in_sync() { # HOST [TRIES]: wait until settled
  for _ in $(seq 1 "${2:-1200}"); do
    if settled "$1"; then return 0; fi
    sleep 0.1
  done
  echo "$0: the cluster did not settle (in sync and balanced)" >&2; return 1
}

node() { # HOST [JOIN] [EXTRA FLAGS...]: start a node in the background
  local host=$1 join=()
  [ -n "${2:-}" ] && join=(-j "$2_$port")
  shift
  if [ $# -gt 0 ]; then shift; fi
  bin/sonaed --addr "$host" -p "$port" --data "$work/$host" --engine "$ENGINE" --redundancy 2 --log-level warn "${join[@]}" "$@" &
  pids+=($!)
}

stat_sum() { # NAME HOST...: the sum of an integer stat over the hosts
  local name=$1 sum=0 v
  shift
  for h in "$@"; do
    v=$(bin/sonae -s "$h:$port" stat "^${name//./\\.}\$" 2>/dev/null | awk '{print $2}')
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
