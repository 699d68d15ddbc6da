#!/usr/bin/env bash
# Rebalance benchmark (online scale-out): a 3-node cluster (redundancy 2)
# holding SIZE_MB of values gets a 4th node with -j. Measures how long the
# join takes to settle (every vnode in sync, every position balanced), the
# bytes moved and MB/s, and a client load's ops/s and p99 before the join
# (idle) and while data moves, in back-to-back slices of SLICE.
#
# Knobs (environment): SIZE_MB (1024), DATA_VALUE (10000 bytes per loaded
# value), DCNICE (empty: the default preset, 3), MOVE_RATE (empty: the
# preset's; bytes/s per sending node, k/m/g suffixes), SLICE (5s), IDLE_SLICES
# (3), CONNS (16), RATE (5000), ENGINE (pebble). The live load is 90% gets
# of 100-byte values over 10000 keys, through the routing-aware client,
# paced at RATE requests/s (an open loop: latency counts from each
# request's due time, so stalls show). RATE=0 runs it as fast as it goes
# instead, which on a small machine measures how much CPU the move takes
# from a saturated client rather than the latency clients see.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-1024}
DATA_VALUE=${DATA_VALUE:-10000}
DCNICE=${DCNICE:-}
MOVE_RATE=${MOVE_RATE:-}
SLICE=${SLICE:-5s}
IDLE_SLICES=${IDLE_SLICES:-3}
CONNS=${CONNS:-16}
RATE=${RATE:-5000}
ENGINE=${ENGINE:-pebble}

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
. scripts/lib-cluster.sh
port=$(free_port)
hosts=(127.0.0.61 127.0.0.62 127.0.0.63)
newnode=127.0.0.64

node "${hosts[0]}"
ready "${hosts[0]}"
node "${hosts[1]}" "${hosts[0]}"
node "${hosts[2]}" "${hosts[0]}"
ready "${hosts[1]}"
ready "${hosts[2]}"
in_sync "${hosts[0]}"
seeds=$(printf "%s:$port," "${hosts[@]}")
seeds=${seeds%,}

keys=$(( SIZE_MB * 1024 * 1024 / DATA_VALUE ))
echo "loading $keys values of $DATA_VALUE bytes ($SIZE_MB MiB before replication)" >&2
t=$(date +%s.%N)
bin/sonae bench --cluster "$seeds" --keys "$keys" --value-size "$DATA_VALUE" --key-prefix data: \
  --get-ratio 0 --duration 1s --conns 32 -o json > "$work/load.json"
load_s=$(python3 -c "import time; print(f'{time.time()-$t:.1f}')")
in_sync "${hosts[0]}"
if [ -n "$DCNICE" ]; then # a cluster-wide runtime option
  bin/sonae -s "${hosts[0]}:$port" option set dcnice "$DCNICE" >/dev/null
fi
if [ -n "$MOVE_RATE" ]; then
  bin/sonae -s "${hosts[0]}:$port" option set move_rate "$MOVE_RATE" >/dev/null
fi

raw="$work/slices.jsonl"
: > "$raw"
preload=true # the first slice writes every live key once
slice() { # PHASE: one slice of live load, with its wall-clock bounds
  local start out
  start=$(date +%s.%N)
  out=$(bin/sonae bench --cluster "$seeds" --keys 10000 --value-size 100 --key-prefix live: --get-ratio 0.9 \
    --conns "$CONNS" --rate "$RATE" --preload="$preload" --duration "$SLICE" -o json)
  preload=false
  python3 -c 'import json,sys,time; d=json.loads(sys.argv[3]); d.update(phase=sys.argv[1], start=float(sys.argv[2]), end=time.time()); print(json.dumps(d))' \
    "$1" "$start" "$out" >> "$raw"
}
for _ in $(seq 1 "$IDLE_SLICES"); do slice idle; done

sent0=$(stat_sum stats.move_bytes_sent "${hosts[@]}")
t0=$(date +%s.%N)
node "$newnode" "${hosts[0]}"
ready "$newnode"
saw_join=false
( while [ ! -e "$work/done" ]; do slice move; done ) &
loader=$!
until settled "$newnode" && [ "$(bin/sonae -s "$newnode:$port" stat '^stats\.run_join$' | awk '{print $2}')" = false ]; do
  if [ "$(bin/sonae -s "$newnode:$port" stat '^stats\.run_join$' 2>/dev/null | awk '{print $2}')" = true ]; then saw_join=true; fi
  sleep 0.2
done
t1=$(date +%s.%N)
touch "$work/done"
wait "$loader"
sent=$(( $(stat_sum stats.move_bytes_sent "${hosts[@]}" "$newnode") - sent0 ))

{
  echo "sonaed $(git rev-parse --short HEAD 2>/dev/null || echo dev), engine $ENGINE, on $(nproc) cores; 3 nodes + 1 joining, redundancy 2, dcnice ${DCNICE:-default}, move_rate ${MOVE_RATE:-from dcnice}"
  if [ "$RATE" = 0 ]; then pace="as fast as it goes (closed loop)"; else pace="paced at $RATE requests/s"; fi
  echo "live load: $CONNS connections per node, 90% gets of 100-byte values, $pace, in ${SLICE} slices"
  echo "data: $keys values x $DATA_VALUE bytes = $SIZE_MB MiB (x2 replicas), loaded in ${load_s}s; stats.run_join seen true: $saw_join"
  bin/sonae -s "$newnode:$port" routing 2>/dev/null | sed 's/^/  /' || true
  python3 - "$raw" "$t0" "$t1" "$sent" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
t0, t1, sent = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
dur = t1 - t0
print(f"rebalance: {dur:.1f}s from the join to settled, {sent/2**20:.0f} MiB moved, {sent/2**20/dur:.1f} MiB/s")
idle = [r for r in runs if r["phase"] == "idle"]
during = [r for r in runs if r["phase"] == "move" and r["end"] <= t1 + 0.5]
def med(rs, k): return statistics.median(r["result"][k] for r in rs)
print(f"{'phase':>7} {'slices':>6} {'ops/s':>9} {'p50':>8} {'p99':>8} {'max p99':>8} {'errors':>6}")
for name, rs in (("idle", idle), ("moving", during)):
    if not rs:
        print(f"{name:>7} {0:>6} (no slice ended before the move did)"); continue
    print(f"{name:>7} {len(rs):>6} {med(rs,'ops_per_sec'):>9.0f} {med(rs,'p50_ns')/1000:>6.0f}us {med(rs,'p99_ns')/1000:>6.0f}us "
          f"{max(r['result']['p99_ns'] for r in rs)/1000:>6.0f}us {sum(r['result'].get('errors',0) for r in rs):>6}")
if idle and during:
    print(f"ratios moving/idle: ops/s {med(during,'ops_per_sec')/med(idle,'ops_per_sec'):.2f}x, "
          f"p99 {med(during,'p99_ns')/med(idle,'p99_ns'):.2f}x (median slice)")
PY
} | tee "bench/results/rebalance-$(date -u +%Y%m%dT%H%M%SZ).txt"
