# Targets a newcomer can guess: build, run, test, bench, fuzz, lint.
GO       ?= go
BIN      ?= bin/stratum-proxy
ARGS     ?=
FUZZTIME ?= 30s

.PHONY: build run test test-short bench bench-go bench-cluster fuzz lint screenshot install

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

# 100,000 miners over 6 proxies on one etcd (SO_REUSEPORT), 6 flood processes
# from 127.0.0.2-9: memory per miner, upstreams, fan-out, /metrics time.
bench-cluster:
	$(GO) run ./bench/cmd/suite --scenarios cluster $(ARGS)

# Each fuzzer for FUZZTIME (go test runs one fuzz target at a time).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzNextLine$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzSplitArray$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzUnquote$$' -fuzztime=$(FUZZTIME) ./codec
	$(GO) test -run='^$$' -fuzz='^FuzzSessionStateMachine$$' -fuzztime=$(FUZZTIME) ./proxy

# gofmt walks the tree itself: no git needed, and it never falls back to
# reading stdin (gofmt -l with an empty file list does, and hangs).
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Refresh docs/dashboard.png from the real binary in headless Chromium.
screenshot:
	UPDATE_SCREENSHOT=1 $(GO) test ./e2e -run 'TestDashboard$$' -count=1

# The binary to $(DESTDIR)$(PREFIX)/bin, the systemd unit (its ExecStart
# pointed at that binary) to $(DESTDIR)$(UNITDIR), and the example config
# to $(DESTDIR)/etc/stratum-proxy/config unless one is there. Then, as
# root: systemctl daemon-reload && systemctl enable --now stratum-proxy.
PREFIX  ?= /usr/local
UNITDIR ?= /etc/systemd/system
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/stratum-proxy
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/stratum-proxy
	sed 's|/usr/local/bin/stratum-proxy|$(PREFIX)/bin/stratum-proxy|' deploy/stratum-proxy.service > $(DESTDIR)$(UNITDIR)/stratum-proxy.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/stratum-proxy.service
	@if [ -e $(DESTDIR)/etc/stratum-proxy/config ]; then \
		echo "kept $(DESTDIR)/etc/stratum-proxy/config (new keys: deploy/config.example)"; \
	else \
		install -m 0644 deploy/config.example $(DESTDIR)/etc/stratum-proxy/config; \
	fi
