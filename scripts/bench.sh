#!/usr/bin/env bash
# Benchmark xen-core against real Xen 4.17: boot pv-guest-kernel with each
# benchmark workload as Dom0 on both hypervisors under `-icount shift=0` (guest
# rdtsc counts instructions: deterministic, comparable across machines), collect
# every `bench <name> ... per_call_tsc=<P>` line and print
#   benchmark | xen-core | Xen 4.17 | ratio        (TSC per call; xen-core / Xen)
# to stdout and to target/bench/report.md. Serial logs: target/bench/*.log.
# Any new `bench` line a workload prints shows up as a new row by itself.
# The pseudo-workload `xl` boots our Dom0 instead, with the guest archive, and
# runs its `bench create` / `bench destroy` commands (xl_* rows).
# The pseudo-workloads `blk` and `blk-disk` boot our Dom0 with one guest
# running pv-guest-kernel's blk-bench: XenStore read/write per operation and
# blkif 4 KiB requests through grant copies, to an image in Dom0's memory
# (blk) or to a qcow2 image on Dom0's virtio disk (blk-disk; a new disk each
# run under target/bench/); also printed as IOPS and MB/s in the guest's
# (virtual, -icount) time, in a second table.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF'
Usage: scripts/bench.sh [options]

  --workload NAME   a benchmark workload of pv-guest-kernel (repeatable;
                    default: bench-null bench-mmu bench-vcpu bench-events bench-grant xl
                    blk blk-disk), or xl: Dom0's toolstack, `bench create
                    guests/hello.cfg` and `bench destroy guests/idle.cfg`; blk,
                    blk-disk: a guest's XenStore and blkif costs (xs_*, blk_*
                    rows) to an image in Dom0's memory / on Dom0's disk
  --blk-iters N     XenStore operations and random blkif requests of the blk
                    workloads (default 1000)
  --iters N         iterations per benchmark, passed as iters=N (default 100000)
  --xl-iters N      guests created (and destroyed) per xl benchmark (default 20)
  --timeout SECS    per boot (default 600)
  --no-linux        skip the Linux row (Debian's Linux 6.1 as Dom0, wall
                    seconds from QEMU's start to its initramfs /init; the
                    two hypervisors one after the other, without -icount)
  --no-build        do not run scripts/build.sh first
  --report-only     no boots: make the report from the logs of the last run
  -h, --help        this text

Writes target/bench/report.md; exits non-zero if a boot did not power off
cleanly or printed no bench line.
EOF
}

workloads=() iters=100000 xl_iters=20 blk_iters=1000 timeout=600 build=1 boot=1 linux=1
while [ $# -gt 0 ]; do
    case "$1" in
        --workload) workloads+=("${2:?--workload needs a name}"); shift ;;
        --workload=*) workloads+=("${1#*=}") ;;
        --iters) iters=${2:?--iters needs a number}; shift ;;
        --iters=*) iters=${1#*=} ;;
        --xl-iters) xl_iters=${2:?--xl-iters needs a number}; shift ;;
        --xl-iters=*) xl_iters=${1#*=} ;;
        --blk-iters) blk_iters=${2:?--blk-iters needs a number}; shift ;;
        --blk-iters=*) blk_iters=${1#*=} ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift ;;
        --timeout=*) timeout=${1#*=} ;;
        --no-build) build=0 ;;
        --no-linux) linux=0 ;;
        --report-only) boot=0 build=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#workloads[@]} -gt 0 ] || workloads=(bench-null bench-mmu bench-vcpu bench-events bench-grant xl blk blk-disk)

say() { echo "bench: $*" >&2; }

out=target/bench
mkdir -p "$out"
export LC_ALL=C   # sort and join must agree on the order
if [ $build = 1 ]; then
    say "building images"
    scripts/build.sh
fi
if [ $boot = 1 ]; then
    scripts/ensure-qemu.sh
    scripts/fetch-xen.sh >/dev/null
fi

# One boot: $1 = xen-core|xen, $2 = workload. Serial log to $out/<hv>-<workload>.log.
# Workload xl: our Dom0 with the guest configs of guests/ and an xl script.
boot() {
    local hv=$1 wl=$2 flag=() rc=0
    [ "$hv" = xen ] && flag=(--xen)
    local log=$out/$hv-$wl.log
    if [ "$wl" = xl ]; then
        say "$hv: Dom0's xl benchmarks, $xl_iters guests each (-icount shift=0) ..."
        flag+=(--xl "bench create guests/hello.cfg $xl_iters; bench destroy guests/idle.cfg $xl_iters")
    elif [ "$wl" = blk ] || [ "$wl" = blk-disk ]; then
        # Grant copies (persistent=0): the hypervisor's part of each request.
        local cfg=$out/$hv-$wl.d/blkbench.cfg format=raw script="create guests/blkbench.cfg; wait blkbench"
        rm -rf "$out/$hv-$wl.d" && mkdir -p "$out/$hv-$wl.d"
        if [ "$wl" = blk-disk ]; then
            format=qcow2 script="image-create bench 8M; $script"
            flag+=(--disk "$out/$hv-$wl.d/disk.img")
        fi
        printf '%s\n' 'name="blkbench"' 'kernel="pv-guest-kernel"' 'memory=16' \
            "extra=\"workload=blk-bench iters=$blk_iters persistent=0\"" \
            "disk = [ 'format=$format, vdev=xvda, access=rw, target=bench' ]" >"$cfg"
        say "$hv: $wl: blk-bench iters=$blk_iters in a guest (-icount shift=0) ..."
        flag+=(--guest "$cfg" --xl "$script")
    else
        say "$hv: workload=$wl iters=$iters (-icount shift=0) ..."
        flag+=(--dom0 target/images/pv-guest-kernel --dom0-cmdline "workload=$wl iters=$iters")
    fi
    # Two vCPUs for Dom0 on both hypervisors: bench-events' ping-pong needs
    # the second; the other workloads use one.
    scripts/run.sh --no-build "${flag[@]}" --append "dom0_max_vcpus=2" --icount --timeout "$timeout" \
        >"$log" 2>"$log.stderr" || rc=$?
    if [ $rc -ne 0 ]; then
        say "$hv: workload=$wl ended with status $rc (see $log)"
        return 1
    fi
    say "$hv: workload=$wl done: $(grep -c '^\(\[[a-z]*\] \)\{0,1\}bench ' "$log" || true) bench line(s)"
}

# Two cores: the two hypervisors run side by side (icount makes the numbers
# independent of the load).
failed=0
for wl in "${workloads[@]}"; do
    [ $boot = 1 ] || break
    boot xen-core "$wl" & p1=$!
    boot xen "$wl" & p2=$!
    wait $p1 || failed=1
    wait $p2 || failed=1
done

# Linux as Dom0 to its /init: wall seconds, printed as "linux_dom0_init_s <s>".
# Boots alone (nothing else running), killed once the marker shows.
linux_boot() {
    local hv=$1 kernel opts
    if [ "$hv" = xen ]; then kernel=.cache/xen/xen.bin opts="console=com1 dom0=pv noreboot"
    else kernel=target/images/xen-core opts="console=com1"; fi
    local log=$out/$hv-linux.log
    say "$hv: Debian's Linux as Dom0 to /init (wall clock) ..."
    local start end pid
    start=$(date +%s.%N)
    qemu-system-x86_64 -accel tcg -cpu max -m 1024 -display none -serial stdio -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$kernel" \
        -append "$opts dom0_mem=512M smap=0" \
        -initrd ".cache/linux/vmlinuz console=hvc0 earlyprintk=xen,.cache/linux/initrd.cpio" </dev/null >"$log" 2>&1 &
    pid=$!
    while kill -0 $pid 2>/dev/null && ! grep -q "linux-init: reached /init" "$log"; do
        sleep 0.1
        [ "$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN{print (n-s > '"$timeout"')}')" = 1 ] && break
    done
    end=$(date +%s.%N)
    kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
    if grep -q "linux-init: reached /init" "$log"; then
        awk -v s="$start" -v e="$end" 'BEGIN{printf "linux_dom0_init_s %.1f\n", e - s}' >"$log.result"
        say "$hv: Linux reached /init: $(cat "$log.result")"
    else
        say "$hv: Linux did not reach /init (see $log)"
        rm -f "$log.result"
        return 1
    fi
}
if [ $boot = 1 ] && [ $linux = 1 ]; then
    scripts/fetch-linux.sh >/dev/null
    linux_boot xen-core || failed=1
    linux_boot xen || failed=1
fi

# per_call_tsc of each benchmark, in order of first appearance: "name value"
# (blk-disk's rows get a disk_ prefix: the same guest runs in blk).
results() {
    local f prefix
    for wl in "${workloads[@]}"; do
        f=$out/$1-$wl.log
        [ -f "$f" ] || continue
        prefix=
        [ "$wl" = blk-disk ] && prefix=disk_
        tr -d '\r' <"$f" | sed -n 's/^\(([dD]0) \)\{0,1\}\(\[[a-z]*\] \)\{0,1\}bench \([^ ]*\) .*per_call_tsc=\([0-9][0-9]*\).*/\3 \4/p' | sed "s/^/$prefix/"
    done
}

# blk-bench's rates: "name value unit".
rates() {
    local f
    for wl in "${workloads[@]}"; do
        f=$out/$1-$wl.log
        [ -f "$f" ] || continue
        tr -d '\r' <"$f" | sed -n "s/^\[[a-z]*\] rate \([^ ]*\) \([0-9.]*\) \(.*\)/$wl:\1 \2 \3/p"
    done
}

report=$out/report.md
{
    echo "# Benchmarks: xen-core vs Xen 4.17"
    echo
    echo "pv-guest-kernel as Dom0 under QEMU TCG \`-icount shift=0\` (TSC = instructions);"
    echo "xl_* rows: our Dom0's \`bench create|destroy\` (TSC per guest created or destroyed),"
    echo "xs_*, blk_* rows: blk-bench in a guest under our Dom0, TSC per XenStore operation or"
    echo "4 KiB blkif request (grant copies; disk_*: to a qcow2 image on Dom0's virtio disk),"
    [ $boot = 1 ] && echo "iters=$iters, xl-iters=$xl_iters, blk-iters=$blk_iters," || echo "(report of earlier logs)"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown),"
    echo "Xen: $(cat .cache/xen/version 2>/dev/null || echo unknown)."
    echo
    echo "| benchmark | xen-core | Xen 4.17 | ratio |"
    echo "|---|---:|---:|---:|"
    join -a1 -a2 -e - -o 0,1.2,2.2 \
        <(results xen-core | awk '!seen[$1]++' | sort -k1,1) \
        <(results xen | awk '!seen[$1]++' | sort -k1,1) |
    awk '{
        ratio = ($2 != "-" && $3 != "-" && $3 > 0) ? sprintf("%.2f", $2 / $3) : "-"
        printf "| %s | %s | %s | %s |\n", $1, $2, $3, ratio
    }'
    if [ -n "$(rates xen-core)$(rates xen)" ]; then
        echo
        echo "blk-bench rates in the guest's system time (virtual under -icount: comparable"
        echo "between the hypervisors, not wall-clock figures); higher is better:"
        echo
        echo "| workload:rate | xen-core | Xen 4.17 | ratio |"
        echo "|---|---:|---:|---:|"
        join -a1 -a2 -e - -o 0,1.2,2.2,1.3 \
            <(rates xen-core | sort -k1,1) <(rates xen | sort -k1,1) |
        awk '{
            ratio = ($2 != "-" && $3 != "-" && $3 > 0) ? sprintf("%.2f", $2 / $3) : "-"
            printf "| %s | %s %s | %s %s | %s |\n", $1, $2, $4, $3, $4, ratio
        }'
    fi
    # (|| true: without a Linux run there is no result file, and set -e
    # would end the script here.)
    lx=$(cat "$out/xen-core-linux.log.result" 2>/dev/null | awk '{print $2}' || true)
    lz=$(cat "$out/xen-linux.log.result" 2>/dev/null | awk '{print $2}' || true)
    if [ -n "$lx$lz" ]; then
        echo
        echo "Debian's Linux 6.1 as Dom0 (1 GiB, dom0_mem=512M, smap=0), wall seconds from"
        echo "QEMU's start to its initramfs /init, TCG without -icount, one boot at a time:"
        echo
        echo "| benchmark | xen-core | Xen 4.17 | ratio |"
        echo "|---|---:|---:|---:|"
        awk -v a="${lx:--}" -v b="${lz:--}" 'BEGIN{
            r = (a != "-" && b != "-" && b > 0) ? sprintf("%.2f", a / b) : "-"
            printf "| linux_dom0_init_s | %s | %s | %s |\n", a, b, r }'
    fi
} >"$report"

rows=$(( $(grep -c '^| ' "$report") - 1 ))   # less the header
if [ "$rows" -eq 0 ]; then
    say "no bench lines found"
    failed=1
fi
cat "$report"
say "report written to $report"
exit $failed
