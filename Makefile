# Targets mirror CI: .ci/run runs `make test` and `make soak`.
SHELL := bash
.SHELLFLAGS := -o pipefail -euc
GO ?= go
PKGS := ./...

.PHONY: all build test soak fuzz bench bench-cluster bench-rebalance bench-failover lint tidy-check deps clean

all: build test

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	bash scripts/install-deps.sh

## test: everything, as CI runs it (about 5 minutes on 2 cores).
test: deps lint
	$(GO) test -count=1 -timeout 15m $(PKGS)
	$(GO) test -count=1 -race -timeout 15m ./internal/protocol/ ./internal/storage/ ./internal/kv/ ./internal/server/ ./internal/replication/ ./internal/meta/ ./internal/netmux/ ./client/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## soak: longer fault runs for CI (about 15 minutes): 20 kill -9 cycles per
## durability policy, 1500 stalled clients, the cluster linearizability
## tests four times longer, 20x the property-test cases, 3 minutes of
## fuzzing the parser and 20 s per peer-protocol and metadata fuzz target.
soak: deps
	SONAE_SOAK=1 $(GO) test -count=1 -timeout 30m -run 'Kill9|Stalled' ./tests/crash/ ./internal/server/
	SONAE_SOAK=4 $(GO) test -count=1 -timeout 30m -run 'Linearizable' ./tests/cluster/
	$(GO) test -count=1 -timeout 30m -run 'Rapid' ./internal/storage/ ./internal/kv/ -rapid.checks=2000
	$(MAKE) fuzz FUZZTIME=180s

FUZZTIME ?= 60s
CLUSTER_FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParser -fuzztime $(FUZZTIME) ./internal/protocol/
	for f in FuzzDecodeRequest FuzzReadFrame FuzzDecodeChange FuzzDecodeResponse FuzzHandleFrame; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(CLUSTER_FUZZTIME) ./internal/replication/ || exit 1; \
	done
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(CLUSTER_FUZZTIME) ./internal/meta/

## bench: sonaed (memory, pebble) against memcached, then one node against a
## three-node cluster (forwarding and smart client), alternating rounds; a
## 4th node joining 1 GB (rebalance); kill -9 failover trials and the
## restore of full redundancy for 1 GB.
bench:
	bash scripts/bench.sh
	bash scripts/bench-cluster.sh
	bash scripts/bench-rebalance.sh
	bash scripts/bench-failover.sh

bench-cluster:
	bash scripts/bench-cluster.sh

bench-rebalance:
	bash scripts/bench-rebalance.sh

bench-failover:
	bash scripts/bench-failover.sh

tidy-check:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf bin
