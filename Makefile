# Entry points; scripts/setup.sh installs what is missing and is quick when nothing is.

BINARY := target/release/moodscope

.PHONY: demo test setup build bench

## Install what is missing, build, and show the dashboard on the demo clip.
demo: setup build
	$(BINARY) --demo

## Install what is missing and run the whole test suite.
test: setup
	cargo test --release

setup:
	bash scripts/setup.sh

build: setup
	cargo build --release

## Measure per-stage latency and frames per second on the demo clip.
bench: build
	$(BINARY) bench
