#!/usr/bin/env bash
# Stress runs of Enigma (`make stress`; `tests/stress.rs` runs a short version): the syscall
# fuzzer with many seeds at each CPU count, and `usertests` at four CPUs several times, every
# QEMU run with a timeout, while busy loops keep the host's cores loaded on purpose. Prints
# one line per run, then every failure with its seed and log, and ends with ONE line
# `stress: N passed, M failed`; the exit status is non-zero if any run failed.
#
# Settings (environment variables, defaults in brackets):
#   SEEDS ["1 2 3 4 5"]         fuzzer seeds          CALLS [20000]  calls per fuzz run
#   CPUS ["1 2 4"]              CPU counts to fuzz at  USERTESTS_RUNS [2]  usertests runs at 4 CPUs
#   HOGS [2]                    host busy loops        RUN_TIMEOUT [600]  seconds per QEMU run (a hang limit)
#   ENIGMA [target/release/enigma]  the launcher       LOGS [a new temporary directory]
set -u

SEEDS=${SEEDS:-"1 2 3 4 5"}
CALLS=${CALLS:-20000}
CPUS=${CPUS:-"1 2 4"}
USERTESTS_RUNS=${USERTESTS_RUNS:-2}
HOGS=${HOGS:-2}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
ENIGMA=${ENIGMA:-target/release/enigma}
LOGS=${LOGS:-$(mktemp -d -t enigma-stress.XXXXXX)}
mkdir -p "$LOGS"

hogs=()
# The launcher running now (started in the background, so that a signal is handled at once).
current=""
stop_everything() {
    for pid in $current "${hogs[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    hogs=()
    current=""
}
trap stop_everything EXIT
trap 'echo "stress: interrupted"; exit 130' INT TERM

for _ in $(seq 1 "$HOGS"); do
    ( while :; do :; done ) &
    hogs+=($!)
done

passed=0
failed=0
failures=()
panics=0

# Runs the launcher with a timeout: `run LOG ARGS...`; its status is the launcher's (124 when
# `timeout` had to stop it).
run() {
    local log=$1
    shift
    timeout -k 10 $((RUN_TIMEOUT + 30)) "$ENIGMA" --headless --timeout "$RUN_TIMEOUT" "$@" >"$log" 2>&1 &
    current=$!
    wait "$current"
    local status=$?
    current=""
    return "$status"
}

# Records one run's verdict: `record NAME LOG WHY` (WHY empty: it passed).
record() {
    local name=$1 log=$2 why=$3
    if grep -aq "KERNEL PANIC" "$log"; then
        panics=$((panics + 1))
        why="${why:-failed}; $(grep -a -m1 -A1 "KERNEL PANIC" "$log" | sed 's/\x1b\[[0-9;]*m//g' | tr -d '\r' | tr '\n' ' ')"
    fi
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        echo "stress: PASS $name"
    else
        failed=$((failed + 1))
        failures+=("$name: $why (log $log)")
        echo "stress: FAIL $name: $why"
    fi
}

for cpus in $CPUS; do
    for seed in $SEEDS; do
        name="fuzz --seed $seed --calls $CALLS at --smp $cpus"
        log="$LOGS/fuzz-smp$cpus-seed$seed.log"
        run "$log" --smp "$cpus" --init "fuzz --seed $seed --calls $CALLS"
        status=$?
        why=""
        last=$(grep -a "^fuzz:" "$log" | tail -n 1 | tr -d '\r')
        if [ "$last" != "fuzz: $CALLS calls, seed $seed, kernel intact" ]; then
            why="last fuzz line ${last:-missing}"
        elif ! grep -aq "^fuzz: seed $seed, $CALLS calls" "$log"; then
            why="no line gives the seed to replay it with"
        elif [ "$status" -ne 0 ]; then
            why="exit status $status"
        fi
        record "$name" "$log" "$why"
    done
done

for round in $(seq 1 "$USERTESTS_RUNS"); do
    name="usertests at --smp 4, run $round"
    log="$LOGS/usertests-smp4-run$round.log"
    run "$log" --smp 4 --init usertests
    status=$?
    why=""
    summary=$(grep -aE "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1 | tr -d '\r')
    if grep -aq "^FAIL" "$log"; then
        why="$(grep -a "^FAIL" "$log" | head -n 3 | tr -d '\r' | tr '\n' ' ')"
    elif [ "${summary##* passed, }" != "0 failed" ]; then
        why="summary ${summary:-missing}"
    elif [ "$status" -ne 0 ]; then
        why="exit status $status"
    fi
    record "$name" "$log" "$why"
done

stop_everything
for failure in "${failures[@]}"; do
    echo "stress: failed: $failure"
done
[ "$panics" -gt 0 ] && echo "stress: $panics runs ended in a kernel panic"
echo "stress: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
