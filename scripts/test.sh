#!/usr/bin/env bash
# THE test command: everything CI runs.
#   1. makes sure QEMU, Xen 4.17 (the differential oracle) and Debian's Linux
#      with a busybox initramfs (scripts/fetch-linux.sh) are there,
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

start=$SECONDS
step() { echo "==> [$((SECONDS - start))s] $*" >&2; }

step "QEMU"
scripts/ensure-qemu.sh
qemu-system-x86_64 --version | head -n1 >&2
step "Xen 4.17 (differential oracle)"
scripts/fetch-xen.sh >/dev/null
step "Debian's Linux 6.1 and busybox (third-party PV kernel)"
scripts/fetch-linux.sh >/dev/null
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
