#!/usr/bin/env bash
# Build the three bare-metal images (hypervisor, Dom0, PV guest kernel) with the
# installed stable toolchain and copy them to target/images/.
#
# The images are ordinary host-target (x86_64-unknown-linux-gnu) no_std binaries
# linked freestanding by each crate's build.rs (see docs/building.md). A
# separate --target-dir keeps these RUSTFLAGS away from host tests and build
# scripts.
#
#   PROFILE=dev scripts/build.sh      # unoptimised images (default: release)
set -euo pipefail

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/build.sh

Build the bare-metal images (xen-core, dom0, pv-guest-kernel) with the
installed stable Rust and copy them to target/images/, with the host tool
behind scripts/xl.sh (target/images/xl).

  PROFILE=dev scripts/build.sh    unoptimised images (default: release)
  -h, --help                      this text

Exit status: 0 built, non-zero if cargo failed.
EOF
        exit 0 ;;
    "") ;;
    *) echo "build: no options but --help (see --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/build.sh

Build the three bare-metal images (xen-core, dom0, pv-guest-kernel) with the
installed stable toolchain into target/images/. Takes no arguments;
PROFILE=dev builds unoptimised images (default: release).

  -h, --help   this text
EOF
        exit 0 ;;
esac

profile=${PROFILE:-release}
out=target/images
dir=$profile; [ "$profile" = dev ] && dir=debug

echo "build: images ($profile) -> $out/" >&2
RUSTFLAGS="-C no-redzone=yes -C force-frame-pointers=yes" \
    cargo build --quiet --profile "$profile" \
    --target x86_64-unknown-linux-gnu --target-dir target/bare \
    -p xen-core -p dom0 -p pv-guest-kernel --bins

# The host tool behind scripts/xl.sh: an ordinary host program.
cargo build --quiet --profile "$profile" -p xl-host --bin xl

mkdir -p "$out"
for img in xen-core dom0 pv-guest-kernel; do
    cp "target/bare/x86_64-unknown-linux-gnu/$dir/$img" "$out/$img"
done
cp "target/$dir/xl" "$out/xl"
ls -l "$out" >&2
