#!/usr/bin/env bash
# The grant demo: boot xen-core (or, with --xen, real Xen 4.17) with our Dom0
# and two guests that talk through a granted page and an event channel
# (guests/offer.cfg, guests/accept.cfg; pv-guest-kernel's grant-offer and
# grant-accept workloads). Dom0 runs, unattended:
#   create offer; create accept; wait accept; sleep 1; list; destroy offer; list
# and powers off. The terminal shows Dom0's console (the xl commands, the
# guests' consoles relayed as [offer] ... / [accept] ..., xl list) with
# progress lines; the whole serial log goes to target/demo/<hypervisor>.log.
#
# Exit status: run.sh's (0 Dom0 powered off, 124 timeout, ...; see
# scripts/run.sh --help); 1 when the run ended well but a guest did not end
# with "Test result: SUCCESS".
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF'
Usage: scripts/demo.sh [options]

  --xen            boot real Xen 4.17 instead of xen-core
  --timeout SECS   end the run after SECS seconds (default 300)
  --verbose        show the hypervisor's own (XEN) lines too
  --no-build       do not run scripts/build.sh first
  -h, --help       this text
EOF
}

xen=() hv=xen-core timeout=300 verbose=0 build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --xen) xen=(--xen) hv=xen ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift ;;
        --timeout=*) timeout=${1#*=} ;;
        --verbose) verbose=1 ;;
        --no-build) build=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'demo: %s\n' "$*"; }

# `sleep 1` serves the consoles a while: the offer finishes its part (it saw
# accept's last notification) and stays up, blocked, to be destroyed.
script="create offer; create accept; wait accept; sleep 1; list; destroy offer; list"
out=target/demo
log=$out/$hv.log
mkdir -p "$out"
if [ $build = 1 ]; then
    say "building the images"
    scripts/build.sh 2>/dev/null
fi
case $hv in
    xen) say "booting Xen 4.17 in QEMU with our Dom0 and guests offer, accept (log: $log)" ;;
    *) say "booting xen-core in QEMU with our Dom0 and guests offer, accept (log: $log)" ;;
esac

# Dom0's console as it comes, with a progress line at each step.
show() {
    local line step=0 steps=7
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        case "$line" in
            "(XEN)"*) [ $verbose = 1 ] && printf '%s\n' "$line"; continue ;;
            "dom0: Xen PV kernel"*) say "Dom0 is up; it runs: $script" ;;
            "xl> "*)
                step=$((step + 1))
                say "[$step/$steps] ${line#xl> }" ;;
            "dom0: powering off") say "Dom0 powers off" ;;
        esac
        case "$line" in
            "xl> "* | "["*"] "* | "xl: "* | "Parsing config"* | "Name "* | "Domain-0 "* | "offer "* | "accept "* | "dom0: powering off")
                printf '%s\n' "$line" ;;
        esac
    done
}

set +e
scripts/run.sh --no-build ${xen[@]+"${xen[@]}"} --timeout "$timeout" \
    --guest guests/offer.cfg --guest guests/accept.cfg --xl "$script" 2>&1 |
    tee "$log" | show
rc=${PIPESTATUS[0]}
set -e

verdict() { tr -d '\r' <"$log" | sed -n "s/^\[$1\] Test result: //p" | tail -1; }
offer=$(verdict offer) accept=$(verdict accept)
say "offer: ${offer:-no verdict}, accept: ${accept:-no verdict}; $(tr -d '\r' <"$log" | sed -n 's/^run: //p' | tail -1)"
if [ "$rc" = 0 ] && { [ "$offer" != SUCCESS ] || [ "$accept" != SUCCESS ]; }; then
    say "a guest did not succeed (see $log)"
    exit 1
fi
exit "$rc"
