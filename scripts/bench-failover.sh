#!/usr/bin/env bash
# Failover measurements on real processes (tests/cluster/bench_failover_test.go):
#   - TRIALS (20) kill -9 trials on 3 nodes with the lan gossip profile:
#     detection, failover commit and write-unavailability, p50/p99;
#   - the time to restore full redundancy for SIZE_MB (1024) MiB after a
#     kill -9, with recover run at once, at dcnice DCNICE (default preset).
# The tables are logged by the tests and kept under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/failover-$(date -u +%Y%m%dT%H%M%SZ).txt"
SONAE_BENCH=1 go test -count=1 -timeout 90m -v -run '^(TestBenchFailoverWindow|TestBenchRestoreRedundancy)$' ./tests/cluster/ 2>&1 \
  | grep -v '^=== ' | tee "$out"
echo "kept in $out"
