#!/usr/bin/env bash
# `make bench`: the exact figures, then the wall-clock ones. First `tests/bench.rs`: `bench`
# under `--icount --smp 1`, every figure printed beside its value in bench/baseline.txt, and
# a failure if one grew more than 5 % over it. Then what a second CPU buys, by the host's
# clock: `parallel 2 400` at one CPU and at two, and the speed-up, printed and not judged
# (it depends on how free the host's cores are). Exit status: the baseline check's.
set -u

ENIGMA=${ENIGMA:-target/release/enigma}

cargo test --release --test bench -- --nocapture --test-threads 1
checked=$?

# Milliseconds `parallel 2 400` took at `$1` CPUs, or nothing if it did not report.
job_ms() {
    timeout -k 10 150 "$ENIGMA" --headless --timeout 120 --smp "$1" --init "parallel 2 400" 2>&1 |
        tr -d '\r' | sed -n 's/^parallel: 2 processes, 400 million rounds, \([0-9]*\) ms$/\1/p'
}

one=$(job_ms 1)
two=$(job_ms 2)
if [ -n "$one" ] && [ -n "$two" ] && [ "$two" -gt 0 ]; then
    echo "bench: parallel 2 400: $one ms on one CPU, $two ms on two: speed-up $(awk "BEGIN { printf \"%.2f\", $one / $two }")x (wall clock, not checked)"
else
    echo "bench: parallel 2 400 did not report (one CPU: '${one}', two: '${two}')"
fi
exit "$checked"
