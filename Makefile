# Enigma's two commands: `make run` boots it in QEMU, `make test` runs every test. Beside
# them: `make bench` (figures against bench/baseline.txt) and `make stress` (about ten
# minutes of fuzzing and usertests with the host loaded on purpose).
# Both first install whatever is missing: the pinned Rust toolchain (rust-toolchain.toml),
# and QEMU with OVMF and gdb (apt-get). A second call installs nothing.

TOOLCHAIN := $(shell sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Extra launcher flags for `make run`, e.g. `make run ARGS='--init "hello one two"'`.
ARGS ?=
# Seed and length of `make fuzz`.
SEED ?= 7
CALLS ?= 200000

.PHONY: run test bench stress deps toolchain qemu gdb bench-alloc fuzz clean

# Quitting QEMU yourself (Ctrl-A X, closing the window) ends the launcher with 125, which is
# how a session normally ends, so it is not reported as a failure here.
run: deps
	cargo run --release -- $(ARGS) || [ $$? -eq 125 ]

# Lints first, with warnings denied, so the lints the crates configure take effect: the host
# crates with all their targets, the kernel (its privileged core included) and the user
# programs as built for the machine, and the kernel's two libraries as built for their host
# unit tests (the core with its allocator benchmark).
test: deps
	cargo clippy --release -p abi -p userlib -p console -p enigma --all-targets -- -D warnings
	cargo clippy --release -p kernel -p enigma-core -p userspace --target x86_64-unknown-none -- -D warnings
	cargo clippy --release -p kernel --lib --tests -- -D warnings
	cargo clippy --release -p enigma-core --lib --tests --benches -- -D warnings
	cargo test --release -p abi -p enigma-core -p kernel -p userlib -p console -p enigma

# `bench` under `--icount --smp 1`, checked against bench/baseline.txt (no figure more than
# 5 % over it), then the two-CPU speed-up of `parallel 2 400` by the host's clock, printed.
bench: deps
	cargo build --release
	scripts/bench.sh

# The fuzzer with five seeds at 1, 2 and 4 CPUs and usertests twice at 4 CPUs, while
# two busy loops load the host; ends with `stress: N passed, M failed` (see scripts/stress.sh
# for its settings, e.g. `make stress SEEDS="1 2" CALLS=20000`).
stress: deps
	cargo build --release
	scripts/stress.sh

# Enigma's heap allocators against linked_list_allocator and talc, on the host.
bench-alloc: toolchain
	cargo bench -p enigma-core --bench alloc

# A long syscall-fuzzing run; a kernel panic would end it with status 101.
fuzz: deps
	cargo run --release -- --headless --timeout 3600 --init "fuzz --seed $(SEED) --calls $(CALLS)"

deps: toolchain qemu gdb

toolchain:
	@if ! rustup toolchain list | grep -q "^$(TOOLCHAIN)" \
	    || ! rustup component list --toolchain $(TOOLCHAIN) --installed | grep -q '^rust-src' \
	    || ! rustup component list --toolchain $(TOOLCHAIN) --installed | grep -q '^llvm-tools' \
	    || ! rustup target list --toolchain $(TOOLCHAIN) --installed | grep -q '^x86_64-unknown-none$$'; then \
	    echo "make: installing Rust $(TOOLCHAIN) with rust-src, llvm-tools and x86_64-unknown-none (rust-toolchain.toml)"; \
	    rustup toolchain install; \
	fi

qemu:
	@if ! command -v qemu-system-x86_64 >/dev/null || [ ! -f /usr/share/OVMF/OVMF_CODE.fd ]; then \
	    echo "make: installing qemu-system-x86 and ovmf with apt-get"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 ovmf; \
	fi

# The debugger `--gdb` waits for; the end-to-end tests drive it too.
gdb:
	@if ! command -v gdb >/dev/null; then \
	    echo "make: installing gdb with apt-get"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb; \
	fi

clean:
	cargo clean
