#!/usr/bin/env bash
# Runs each fuzz target for a bounded time and records what it did.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 300 s, every target)
#   fuzz/run.sh 30                        (CI's short mode)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++
# compiler. libFuzzer needs nightly-only rustc flags (-Zsanitizer=address,
# coverage instrumentation); on the stable toolchain they are allowed by
# RUSTC_BOOTSTRAP=1, set below. Each run is bounded in time
# (-max_total_time), memory (-rss_limit_mb) and per-input time (-timeout).
# The corpus grows in fuzz/corpus/<target> (not committed); the committed
# seeds are in fuzz/seeds/<target>. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script exit non-zero after the
# other targets have run. fuzz/results.tsv keeps one line per target
# (target, seconds, executions, crash inputs), replaced when it runs again.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-300}
shift || true
all=(sasl import_csv data scan html control session seven_bit dkim_sign)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

export RUSTC_BOOTSTRAP=1
# Memory per target: the session and control targets keep a redb store
# (whose page cache may grow to 1 GiB) for the whole run.
rss_limit() {
    case $1 in
        session | control) echo 4096 ;;
        *) echo 2048 ;;
    esac
}
# Largest input per target: a session or message needs more room.
max_len() {
    case $1 in
        scan | html) echo 65536 ;;
        session) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

if [ ${#targets[@]} -eq ${#all[@]} ]; then
    cargo fuzz build -O
else
    for t in "${targets[@]}"; do cargo fuzz build -O "$t"; done
fi
mkdir -p logs
touch results.tsv
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s"
    set +e
    cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb="$(rss_limit "$t")" -timeout=20 \
        -max_len="$(max_len "$t")" -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    rc=$?
    set -e
    # The store those targets made on tmpfs (see fuzz_targets/session.rs).
    rm -rf /dev/shm/outguard-fuzz-"$t"-* "${TMPDIR:-/tmp}"/outguard-fuzz-"$t"-*
    execs=$({ grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" || true; } | grep -o '[0-9]*$' | tail -n 1 || true)
    crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    # One line per target: this run's replaces the last one.
    { grep -v "^$t	" results.tsv || true; } > results.tsv.new
    mv results.tsv.new results.tsv
    printf '%s\t%s\t%s\t%s\n' "$t" "$secs" "${execs:-0}" "$crashes" >> results.tsv
    echo "   executions: ${execs:-0}, crash/oom/timeout inputs: $crashes, exit: $rc"
    if [ "$rc" -ne 0 ]; then
        failed=1
        tail -n 40 "logs/$t.log"
    fi
done
exit $failed
