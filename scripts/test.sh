#!/usr/bin/env bash
# Usage: scripts/test.sh [cargo test arguments]
#
# THE test command: everything CI runs.
#   1. makes sure QEMU and Xen 4.17 (the differential oracle) are installed,
#   2. builds the bare-metal images (scripts/build.sh),
#   3. runs `cargo test --workspace`: host unit and property tests, then the
#      QEMU integration tests of tests/ (two QEMUs at a time on two cores).
# Knobs pass through the environment, e.g.
#   PROPTEST_CASES=64 scripts/test.sh        # fewer property-test cases
#   XEN_CORE_TEST_TIMEOUT=120 scripts/test.sh  # per-boot timeout (default 60 s)
#   scripts/test.sh -p tests --test workloads  # arguments replace --workspace
#   RUST_TEST_THREADS=1 scripts/test.sh      # one test (one QEMU) at a time
# Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h|--help)
        # The header above is the help.
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0 ;;
esac

start=$SECONDS
step() { echo "==> [$((SECONDS - start))s] $*" >&2; }

step "QEMU"
scripts/ensure-qemu.sh
qemu-system-x86_64 --version | head -n1 >&2
step "Xen 4.17 (differential oracle)"
scripts/fetch-xen.sh >/dev/null
step "images (scripts/build.sh)"
scripts/build.sh

# The harness would rebuild stale images itself; they were just built.
export XEN_CORE_SKIP_BUILD=1
# Two test threads on two cores: QEMU (TCG) takes one core per boot.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-$(nproc)}
[ $# -gt 0 ] || set -- --workspace
step "cargo test $* ($RUST_TEST_THREADS test threads)"
set +e
cargo test --no-fail-fast "$@"
rc=$?
set -e
if [ $rc -eq 0 ]; then
    step "all tests passed"
else
    step "tests FAILED (cargo test exited $rc)"
fi
exit $rc
