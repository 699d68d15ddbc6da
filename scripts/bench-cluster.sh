#!/usr/bin/env bash
# Cluster benchmark: one sonaed against a three-node cluster (redundancy 2)
# driven two ways, in alternating rounds with the same `sonae bench` load:
#   single   one node, plain memcached connections
#   spread   3 nodes, plain connections spread round robin over every node,
#            so about two thirds of the commands are forwarded
#   smart    3 nodes, the routing-aware client (every key to its primary)
# Prints medians and ratios to the single node, and keeps the table and the
# raw JSON under bench/results/. All processes share this machine, load
# generator included, so the ratios are what this machine can show.
#
# Knobs (environment): ROUNDS (5), DURATION (10s), CONNS (32), GET_RATIO
# (0.9), VALUE_SIZE (100), KEYS (100000), ENGINE (pebble).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
GET_RATIO=${GET_RATIO:-0.9}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-100000}
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

node 127.0.0.31
node 127.0.0.41
ready 127.0.0.31
ready 127.0.0.41
node 127.0.0.42 127.0.0.41
node 127.0.0.43 127.0.0.41
ready 127.0.0.42
ready 127.0.0.43
in_sync 127.0.0.41

seeds="127.0.0.41:$port,127.0.0.42:$port,127.0.0.43:$port"
common=(--duration "$DURATION" --conns "$CONNS" --get-ratio "$GET_RATIO" --value-size "$VALUE_SIZE" --keys "$KEYS" -o json)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="bench/results/cluster-$stamp.jsonl"
: > "$raw"
for r in $(seq 1 "$ROUNDS"); do
  # The key space is preloaded by every run, so each run measures the same
  # data set; the order rotates so no target always runs first.
  for t in $(python3 -c "t=['single','spread','smart']; r=$r; print(' '.join(t[r%3:]+t[:r%3]))"); do
    case $t in
      single) out=$(bin/sonae bench -s "127.0.0.31:$port" "${common[@]}") ;;
      spread) out=$(bin/sonae bench --spread "$seeds" "${common[@]}") ;;
      smart)  out=$(bin/sonae bench --cluster "$seeds" "${common[@]}") ;;
    esac
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["target"]=sys.argv[1]; print(json.dumps(d))' "$t" "$out" >> "$raw"
    echo "round $r $t done" >&2
  done
done

{
  echo "sonaed $(git rev-parse --short HEAD 2>/dev/null || echo dev), engine $ENGINE, on $(nproc) cores; 3-node cluster with redundancy 2"
  bin/sonae -s "127.0.0.41:$port" routing 2>/dev/null | sed 's/^/  /' || true
  python3 - "$raw" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def field(d, name):
    return d["result"][name]
o = next((r["options"] for r in runs if "options" in r), {})
print(f"load: {o.get('conns')} conns, {o.get('get_ratio', 0)*100:.0f}% get, {o.get('value_size')}-byte values, "
      f"{o.get('keys')} keys, {len(runs)//3} alternating rounds (medians)")
print(f"{'target':>8} {'ops/s':>10} {'ratio':>7} {'p50':>9} {'p99':>9} {'p999':>9} {'errors':>7}   rounds ops/s")
by = {}
for r in runs:
    by.setdefault(r["target"], []).append(r)
base = statistics.median(field(r, "ops_per_sec") for r in by["single"])
for t in ("single", "spread", "smart"):
    rs = by[t]
    ops = statistics.median(field(r, "ops_per_sec") for r in rs)
    med = lambda k: statistics.median(field(r, k) for r in rs) / 1000
    errs = sum(r["result"].get("errors", 0) for r in rs)
    print(f"{t:>8} {ops:>10.0f} {ops/base:>6.2f}x {med('p50_ns'):>7.0f}us {med('p99_ns'):>7.0f}us {med('p999_ns'):>7.0f}us {errs:>7}   "
          + " ".join(f"{field(r, 'ops_per_sec'):.0f}" for r in rs))
PY
} | tee "bench/results/cluster-$stamp.txt"
