# Targets mirror CI: .ci/run runs `make test` and `make soak`.
SHELL := bash
.SHELLFLAGS := -o pipefail -euc
GO ?= go
PKGS := ./...

.PHONY: all build test test-race soak fuzz bench lint tidy-check deps clean

all: build test

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	bash scripts/install-deps.sh

## test: everything, as CI runs it (about 5 minutes on 2 cores).
test: deps lint
	$(GO) test -count=1 -timeout 15m $(PKGS)
	$(GO) test -count=1 -race -timeout 15m ./internal/protocol/ ./internal/storage/ ./internal/kv/ ./internal/server/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## soak: the long versions of the fault tests, plus a minute of fuzzing.
soak: deps
	SONAE_SOAK=1 $(GO) test -count=1 -timeout 30m -run 'Kill9|Stalled|Rapid' ./tests/... ./internal/...
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParser -fuzztime 60s ./internal/protocol/

## bench: sonaed (memory, pebble) against memcached, alternating rounds.
bench:
	bash scripts/bench.sh

tidy-check:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf bin
