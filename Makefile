# Targets a newcomer can guess: build, run, test, bench, fuzz, lint.
GO       ?= go
BIN      ?= bin/stratum-proxy
ARGS     ?=
FUZZTIME ?= 30s

.PHONY: build run test test-short bench bench-go fuzz lint screenshot

build:
	$(GO) build -o $(BIN) .

# The proxy with its embedded bbolt store (./data/proxy.db) and the seeded
# pool table: stratum on :9332, API and /metrics on :12743.
run: build
	./$(BIN) $(ARGS)

# Everything CI runs: vet, then every test with the race detector, including
# the end-to-end tests against the pool simulator and, when installed, the
# promtool and Prometheus checks (required under CI=true).
test: lint
	$(GO) test -race -count=1 -timeout 40m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Micro-benchmarks (allocations per frame, share and notify target).
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./codec ./proxy/... ./metrics

# The benchmark suite: proxy vs. miners straight to the pool simulator.
bench: bench-go
	$(GO) run ./bench/cmd/suite $(ARGS)

# Each fuzzer for FUZZTIME (go test runs one fuzz target at a time).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzNextLine$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzSplitArray$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzUnquote$$' -fuzztime=$(FUZZTIME) ./codec

# gofmt walks the tree itself: no git needed, and it never falls back to
# reading stdin (gofmt -l with an empty file list does, and hangs).
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Refresh docs/dashboard.png from the real binary in headless Chromium.
screenshot:
	UPDATE_SCREENSHOT=1 $(GO) test ./e2e -run 'TestDashboard$$' -count=1
