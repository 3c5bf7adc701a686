# slurm-actions: the two commands of the README, and their parts.
#
#   make test   install what is missing, check formatting and lints, build the
#               docs, start what the tests need, run every test
#   make demo   the end-to-end demo (not there yet: see README "Status")

SHELL := /bin/bash
CARGO ?= cargo
# install-deps puts nats-server here; rustup puts cargo here.
export PATH := /opt/slurm-actions-tools/bin:$(HOME)/.cargo/bin:$(PATH)
# CPUs the test Slurm declares (more than the machine has: runners are light).
TEST_SLURM_CPUS ?= 16

.PHONY: test demo deps fmt-check clippy doc test-stack test-run stack-down

test: deps fmt-check clippy doc test-stack test-run

deps:
	deploy/local/install-deps

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

# The tests start their own nats-server per test; Slurm is shared by the run.
test-stack:
	deploy/local/slurm up --reuse --cpus $(TEST_SLURM_CPUS) --min-job-age 60

test-run:
	$(CARGO) test --workspace --locked

stack-down:
	deploy/local/slurm down
	deploy/local/nats down

demo: deps
	@echo "make demo: the end-to-end demo is not there yet; it lands with the"
	@echo "end-to-end issue (see README.md, Status). 'make test' runs what exists."
	@exit 69
