#!/usr/bin/env bash
# Hypercall ABI fuzzing of xen-core's portable core (see docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF2'
Usage: scripts/fuzz.sh MODE [options]

Modes:
  host      the portable core (Dom0, two unprivileged DomUs, two paused
            canaries over simulated memory) under the fuzzer, oracles after
            every step; a finding is minimized and saved as a corpus record
  corpus    replay every record of xen-fuzz/corpus/ (and, with --open, the
            open findings of xen-fuzz/corpus/open/)
  guest     the fuzzer PV kernel (workload=fuzz) as --domains unprivileged
            DomUs beside two canary DomUs, all created by Dom0's xl, under
            QEMU; a finding (hypervisor fault or hang, canary damage, the
            fuzzer's own page-table checks) is minimized by replaying
            subsets of its calls and saved as a postcard record
  diff      the same seeded calls as Dom0 on xen-core and on Xen 4.17, one
            line per call compared (return value, page-table effects);
            divergences not listed in xen-fuzz/diff-known.txt are minimized,
            saved, and fail the run
  replay FILE  re-run a guest or diff record (a host record: use corpus)

Options (host):
  --engine gen|libfuzzer
                 gen (default): the seeded generator, uninstrumented and
                 fast; libfuzzer: coverage-guided (libFuzzer through
                 libfuzzer-sys, built with rustc's stable SanitizerCoverage
                 flags; needs a C++ compiler, installed with apt if missing)
  --seed N       seed (default 1)
  --count N      steps to run (default 1000000; gen engine)
  --time SECS    run this long instead (libfuzzer default 60)
  --long         10^8 steps (not for CI)
  --audit-every N  full mapping and frame-table audits every N steps
                 (default 10000; the incremental checks run after every step)
  --known-open   pass over the open shared_info escape (issue 9) and go on
  --out DIR      where findings go (default target/fuzz/findings)
  -h, --help     this text

Options (guest, diff):
  --seed N       seed (fuzzer k of a guest run gets seed N+k; default 1)
  --count N      calls per fuzzer (default 10000)
  --domains K    fuzzer DomUs (guest; default 1)
  --xen          run the guest mode on Xen 4.17 instead of xen-core
  --soak         guest: 10 minutes, four fuzzers and two canaries
  --minimize-boots N  boots the minimizer may spend (default 16)

Progress goes to stderr about once a second (calls/s per core and wall,
outcomes or libFuzzer's coverage, findings); a throughput table ends the
run. Exit status: 0 no finding, 1 a finding (saved under --out), 2 usage.
EOF2
}

mode=${1:-}
case "$mode" in
    -h|--help|"") usage; [ -n "$mode" ] && exit 0 || exit 2 ;;
    host|corpus|guest|diff|replay) shift ;;
    *) echo "fuzz.sh: unknown mode '$mode'" >&2; usage >&2; exit 2 ;;
esac

engine=gen seed=1 count= time= audit=10000 known= out=target/fuzz/findings open=
domains=1 xen= soak= boots=16 record=
[ "$mode" = replay ] && { record=${1:-}; [ -n "$record" ] || { usage >&2; exit 2; }; shift; }
while [ $# -gt 0 ]; do
    case "$1" in
        --domains) domains=$2; shift 2 ;;
        --xen) xen=1; shift ;;
        --soak) soak=1; shift ;;
        --minimize-boots) boots=$2; shift 2 ;;
        --engine) engine=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --count) count=$2; shift 2 ;;
        --time) time=$2; shift 2 ;;
        --long) count=100000000; shift ;;
        --audit-every) audit=$2; shift 2 ;;
        --known-open) known=1; shift ;;
        --out) out=$2; shift 2 ;;
        --open) open=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fuzz.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
mkdir -p "$out" target/fuzz

if [ "$mode" = guest ] || [ "$mode" = diff ] || [ "$mode" = replay ]; then
    # The fuzzer kernel and Dom0 images, then the QEMU driver (xen-fuzz-qemu,
    # which boots through the integration tests' harness).
    nice -n 10 scripts/build.sh >&2
    nice -n 10 cargo build --quiet --release --manifest-path xen-fuzz/Cargo.toml --target-dir target/fuzz-build --bin xen-fuzz-qemu
    [ "$mode" = guest ] || [ -n "$xen" ] || [ "$mode" = replay ] || scripts/fetch-xen.sh >/dev/null
    [ -z "$xen" ] || scripts/fetch-xen.sh >/dev/null
    export XEN_CORE_SKIP_BUILD=1
    q=target/fuzz-build/release/xen-fuzz-qemu
    log=target/fuzz/$mode.serial
    if [ "$mode" = replay ]; then
        set +e; "$q" replay "$record" > "$log"; rc=$?; set -e
        echo "fuzz replay: serial logs in $log" >&2
        exit $rc
    fi
    args=(--seed "$seed" --count "${count:-10000}" --out "$out" --minimize-boots "$boots")
    if [ "$mode" = guest ]; then
        [ -n "$soak" ] && { domains=4; args=(--seed "$seed" --count 4000000000 --secs 600 --out "$out" --minimize-boots "$boots"); }
        args+=(--domains "$domains" --canaries 2)
        [ -n "$xen" ] && args+=(--xen)
    fi
    set +e
    "$q" "$mode" "${args[@]}" > "$log" 2> >(tee target/fuzz/$mode.out >&2)
    rc=$?
    set -e
    sleep 0.2
    echo "fuzz $mode: serial logs of every boot in $log" >&2
    printf '\n| mode | hypervisor | fuzzer domains | calls | guest s | calls/s (all fuzzers) |\n|---|---|---:|---:|---:|---:|\n'
    grep '^THROUGHPUT' target/fuzz/$mode.out | while read -r _ m rest; do
        get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $rest"; }
        printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$(get hv)" "$(get domains)" "$(get calls)" "$(get secs)" "$(get calls_per_sec)"
    done
    exit $rc
fi
count=${count:-1000000}

# xen-fuzz is its own workspace (a std host tool; see xen-fuzz/Cargo.toml).
fuzzer=target/fuzz-build/release/xen-fuzz
build_gen() { nice -n 10 cargo build --quiet --release --manifest-path xen-fuzz/Cargo.toml --target-dir target/fuzz-build; }

if [ "$mode" = corpus ]; then
    build_gen
    files=(xen-fuzz/corpus/*.postcard)
    [ -n "$open" ] && files+=(xen-fuzz/corpus/open/*.postcard)
    exec "$fuzzer" replay "${files[@]}"
fi

table() { # calls secs cpu_secs engine
    printf '\n| mode | engine | calls | wall s | CPU s | calls/s per core | calls/s wall |\n'
    printf '|---|---|---:|---:|---:|---:|---:|\n'
    printf '| host | %s | %s | %s | %s | %s | %s |\n' "$@"
}

if [ "$engine" = gen ]; then
    build_gen
    args=(host --seed "$seed" --audit-every "$audit" --out "$out")
    if [ -n "$time" ]; then args+=(--time "$time"); else args+=(--count "$count"); fi
    [ -n "$known" ] && args+=(--known-open)
    set +e
    "$fuzzer" "${args[@]}" > target/fuzz/host.out
    rc=$?
    set -e
    line=$(grep '^THROUGHPUT host' target/fuzz/host.out || true)
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    [ -n "$line" ] && table gen "$(get calls)" "$(get secs)" "$(get cpu_secs)" "$(get calls_per_cpu_sec)" "$(get calls_per_wall_sec)"
    exit $rc
fi

[ "$engine" = libfuzzer ] || { echo "fuzz.sh: unknown engine '$engine'" >&2; exit 2; }
command -v c++ >/dev/null || { echo "fuzz.sh: installing a C++ compiler (g++) for libFuzzer" >&2; apt-get install -y g++ >&2; }
# rustc's SanitizerCoverage passes are stable flags; --target keeps them off
# build scripts (which would not link without libFuzzer).
RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
 -C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
 -C llvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -C debug-assertions" \
    nice -n 10 cargo build --quiet --release --manifest-path xen-fuzz/libfuzzer/Cargo.toml \
    --target x86_64-unknown-linux-gnu --target-dir target/libfuzzer
build_gen
bin=target/libfuzzer/x86_64-unknown-linux-gnu/release/hypercalls
corpus=target/fuzz/libfuzzer-corpus
mkdir -p "$corpus"
[ -n "$known" ] && export XEN_FUZZ_KNOWN_OPEN=1
set +e
"$bin" "$corpus" -seed="$seed" -max_total_time="${time:-60}" -max_len=2048 -len_control=10 \
    -print_final_stats=1 -artifact_prefix="$out/libfuzzer-" 2> >(tee target/fuzz/libfuzzer.log >&2)
rc=$?
set -e
sleep 0.2
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' target/fuzz/libfuzzer.log | tail -n1)
secs=$(sed -n 's/^stat::.*_time_sec: *//p; s/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' target/fuzz/libfuzzer.log | tail -n1)
printf '\n| mode | engine | inputs run | coverage | exec/s |\n|---|---|---:|---:|---:|\n'
printf '| host | libfuzzer | %s | %s | %s |\n' "${execs:-?}" \
    "$(grep -o 'cov: [0-9]*' target/fuzz/libfuzzer.log | tail -n1 | cut -d' ' -f2)" \
    "$(grep -o 'exec/s: [0-9]*' target/fuzz/libfuzzer.log | tail -n1 | cut -d' ' -f2)"
if [ $rc -ne 0 ]; then
    for crash in "$out"/libfuzzer-crash-*; do
        [ -e "$crash" ] || continue
        "$fuzzer" from-bytes "$crash" "$crash.postcard" || true
    done
    exit 1
fi
