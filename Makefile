# The two commands a newcomer needs: `make run` and `make test`. See README.md.
SHELL := /bin/bash

.PHONY: run test stop install build bench fuzz screenshot deploy-check scale-test scale-test-cluster open-loop restore-test ha-test backup clean

## Install missing system packages, start Redis and Postgres under .data/, migrate, serve on :8080.
run: install
	@bash scripts/run.sh

## Install missing system packages, run the whole suite against throwaway Redis and Postgres.
test: install
	@bash scripts/test.sh

## Stop the Redis and Postgres that `make run` started.
stop:
	@bash scripts/services.sh stop-all .data

## Install the Debian packages the build and the local servers need (apt-get, via sudo when not root).
install:
	@bash scripts/services.sh install

build: install
	swift build

## Release-build benchmarks next to redis-benchmark and pgbench on the same throwaway servers.
bench: install
	@bash scripts/bench.sh

## Coverage-guided fuzzing (libFuzzer) of every decoder of outside input, FUZZ_SECONDS (default 60) per target.
fuzz:
	@bash scripts/fuzz.sh

## Validate deploy/ offline: Kubernetes schemas, hadolint, haproxy -c, systemd-analyze verify (also run by `make test`).
deploy-check:
	@bash scripts/deploy-check.sh

## The gateway under an open loop: sessions arriving as a Poisson process at each of RATES per second.
open-loop: install
	@bash scripts/open-loop.sh

## Three replicas behind haproxy under simulated handsets, with a replica, Redis and Postgres failing mid-run; then the ledger audit.
scale-test: install
	@bash scripts/scale-test.sh

## The same with sessions on a Redis Cluster of three primaries and three replicas, a primary SIGKILLed mid-run.
scale-test-cluster: install
	@REDIS_MODE=cluster bash scripts/scale-test.sh

## The browser tests alone, their screenshots written to docs/simulator.png and docs/desk.png (the README's pictures).
screenshot: install
	@bash scripts/services.sh install-browser
	@SCREENSHOT_PATH="$(CURDIR)/docs/simulator.png" DESK_SCREENSHOT_PATH="$(CURDIR)/docs/desk.png" bash scripts/test.sh --filter 'BrowserPhoneTests|StaffDeskBrowserTests'

## pgBackRest backups of `make run`'s Postgres into .data/backup: WAL archived continuously, a full backup first, then differential ones.
backup: install
	@bash scripts/backup.sh

## pgBackRest under load: a full and a differential backup, the primary lost mid-load, a restore to the end of the archive and a point-in-time restore; prints the RPO and RTO.
restore-test: install
	@bash scripts/restore-test.sh

## Postgres failover and failback under Patroni and etcd with handsets' load: nothing acknowledged lost; prints the seconds without a primary and the RTO.
ha-test: install
	@bash scripts/ha-test.sh

clean:
	rm -rf .build
