#!/usr/bin/env bash
# Side-by-side benchmark: memcached (from Debian packages), sonaed with the
# memory engine and sonaed with the pebble engine, driven by the same
# `sonae bench` load in alternating rounds. Prints medians and ratios to
# memcached, and keeps the table and JSON under bench/results/.
#
# Knobs (environment): ROUNDS (5), DURATION (10s), CONNS (32), GET_RATIO (0.9),
# VALUE_SIZE (100), KEYS (100000).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
GET_RATIO=${GET_RATIO:-0.9}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-100000}

bash scripts/install-deps.sh
command -v memcached >/dev/null || { echo "bench: memcached is required" >&2; exit 1; }

mkdir -p bin bench/results
go build -o bin/sonaed ./cmd/sonaed
go build -o bin/sonae ./cmd/sonae

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listening on $1" >&2; return 1
}

p_mc=$(free_port); p_mem=$(free_port); p_peb=$(free_port)
# Enough memory for every key many times over, so memcached never evicts.
mc_user=()
[ "$(id -u)" -eq 0 ] && mc_user=(-u root)
memcached -U 0 -l 127.0.0.1 -p "$p_mc" -m 1024 -c 4096 "${mc_user[@]}" &
pids+=($!)
bin/sonaed --engine memory -p "$p_mem" --data "$work/mem" --log-level warn &
pids+=($!)
bin/sonaed --engine pebble -p "$p_peb" --data "$work/peb" --log-level warn &
pids+=($!)
wait_port "$p_mc"; wait_port "$p_mem"; wait_port "$p_peb"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
args=(--compare "memcached=127.0.0.1:$p_mc,memory=127.0.0.1:$p_mem,pebble=127.0.0.1:$p_peb"
  --rounds "$ROUNDS" --duration "$DURATION" --conns "$CONNS" --get-ratio "$GET_RATIO"
  --value-size "$VALUE_SIZE" --keys "$KEYS")
echo "memcached $(memcached -V | awk '{print $2}') vs sonaed $(git rev-parse --short HEAD 2>/dev/null || echo dev) on $(nproc) cores" | tee "bench/results/$stamp.txt"
bin/sonae bench "${args[@]}" -o json > "bench/results/$stamp.json"
python3 - "bench/results/$stamp.json" <<'PY' | tee -a "bench/results/$stamp.txt"
import json, sys
d = json.load(open(sys.argv[1]))
o = d["options"]
print(f"load: {o['conns']} conns, {o['get_ratio']*100:.0f}% get, {o['value_size']}-byte values, {o['keys']} keys, "
      f"{o['duration']/1e9:.0f}s per run, {d['rounds']} alternating rounds (medians)")
print(f"{'target':>10} {'ops/s':>10} {'ratio':>7} {'p50':>9} {'p99':>9} {'p999':>9}   rounds ops/s")
us = lambda ns: f"{ns/1000:.0f}us"
for r in d["results"]:
    rounds = " ".join(f"{x['ops_per_sec']:.0f}" for x in r["rounds"])
    print(f"{r['target']['name']:>10} {r['median_ops_per_sec']:>10.0f} {r['ratio_to_first']:>6.2f}x "
          f"{us(r['median_p50_ns']):>9} {us(r['median_p99_ns']):>9} {us(r['median_p999_ns']):>9}   {rounds}")
PY
