#!/usr/bin/env bash
# Boot xen-core (or real Xen 4.17) with a Dom0 kernel in QEMU, serial console on
# the terminal. Returns the mapped status of the run (see usage below).
# xen-core ends QEMU itself (ACPI S5, isa-debug-exit 1/2/3). Real Xen does not
# (noreboot): this script watches the serial log for Xen's final line and ends
# QEMU. tests/src/lib.rs (the test harness) builds the same command line.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/run.sh [options]

Boot target/images/xen-core (default) or Xen 4.17 in QEMU (TCG) with a Dom0.

  --mem MIB              machine memory, QEMU -m (default 512)
  --dom0-mem SIZE        Dom0 memory, hypervisor option dom0_mem= (default 64M)
  --append "OPTS"        extra hypervisor options, after the defaults
                         (xen-core: console=com1 loglvl=all guest_loglvl=all;
                          Xen: console=com1 dom0=pv loglvl=all guest_loglvl=all noreboot)
  --dom0 PATH            Dom0 kernel (default target/images/dom0)
  --dom0-cmdline "..."   Dom0's command line, e.g. "workload=enosys"
  --module "PATH [cmdline]"
                         a further module after Dom0 (repeatable)
  --guest CFG            an xl.cfg for Dom0's toolstack (repeatable); with none,
                         the configs in guests/ are used. They go, with the
                         guest kernel images, into a cpio archive that becomes
                         Dom0's initrd (unless --module gives one)
  --xl "CMD; CMD"        run these xl commands in Dom0 and power off, instead
                         of the interactive xl> prompt; the first command
                         that fails ends the run with status 1
  --keep-going           with --xl: run every command even after one failed
                         (the status is still 1 if one did)
  --disk PATH            Dom0's disk: a virtio-blk device backed by the host
                         file PATH, where Dom0 keeps guest images (made on
                         first use by scripts/make-disk.sh: 4 GiB sparse, FAT32)
  --xl-socket PATH       the host channel's Unix socket, for scripts/xl.sh
                         (default target/xl.sock, or one of its own if
                         another run holds that; "none": no channel). Not
                         with --xl. See docs/host-xl.md
  --xen                  boot real Xen 4.17 (.cache/xen/xen.bin, fetched if missing)
  --kvm                  use KVM instead of TCG (needs /dev/kvm; see notes: the
                         KVM on the project's machines breaks on SSE)
  --icount               -icount shift=0: guest rdtsc counts instructions
  --gdb                  start halted, gdb stub on :1234 (QEMU -s -S)
  --timeout SECS         end the run after SECS seconds (status 124)
  --qemu ARG             extra QEMU argument (repeatable), e.g. --qemu -d --qemu int
  --no-build             do not run scripts/build.sh first
  --dry-run              print the QEMU command line and exit (creates
                         nothing: its temporary files are shown under
                         xen-core-run.XXXXXX)
  -h, --help             this text

The console: typed keys go to Dom0's xl> prompt (^C interrupts the command
that runs, ^D on an empty line powers Dom0 off); Ctrl-A x quits QEMU,
Ctrl-A c toggles QEMU's monitor, Ctrl-A a types Ctrl-A. When standard input
is not a terminal (a pipe, a file, /dev/null), its end is passed on as ^D,
so `scripts/run.sh < commands.txt` runs them and ends.

Exit status:
  0    Dom0 powered off
  1    --xl: a command failed (Dom0 then powered off)
  2    bad usage, missing file, failed build
  3    Dom0 rebooted
  5    Dom0 crashed
  7    hypervisor panic (fatal error)
  9    triple fault
  124  --timeout expired
  130  stopped by the user: SIGINT/SIGTERM/SIGHUP to run.sh, QEMU quit with
       Ctrl-A x (or its monitor's quit), or QEMU killed by a signal
  other: QEMU's own exit status (it failed to start)
Examples:
  scripts/run.sh
  scripts/run.sh --dom0 target/images/pv-guest-kernel --dom0-cmdline workload=privop
  scripts/run.sh --xen --dom0 target/images/pv-guest-kernel --dom0-cmdline workload=banner
  scripts/run.sh --xl "create guests/hello.cfg; list"
  scripts/run.sh --guest my.cfg        # then at xl>: create guests/my.cfg
  scripts/run.sh & scripts/xl.sh list  # xl from another terminal or a script
EOF
}

die() { echo "run: $*" >&2; exit 2; }

orig_pwd=$PWD
cd "$(dirname "$0")/.."
root=$PWD
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$orig_pwd/$1" ;; esac; }

feeder=
mem=512 dom0_mem=64M append="" dom0="" dom0_cmdline="" modules=() guests=() xl_script=
disk= xen=0 kvm=0 icount=0 gdb=0 timeout=0 build=1 dry_run=0 qemu_extra=() keep_going=0
xl_socket_default=$PWD/target/xl.sock
xl_socket=$xl_socket_default

need() { [ $# -ge 2 ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    opt=$1 val=
    case "$opt" in
        --*=*) val=${opt#*=}; opt=${opt%%=*}; set -- "$opt" "$val" "${@:2}" ;;
    esac
    case "$opt" in
        --mem)          need "$@"; mem=$2; shift ;;
        --dom0-mem)     need "$@"; dom0_mem=$2; shift ;;
        --append)       need "$@"; append="$append $2"; shift ;;
        --dom0)         need "$@"; dom0=$(abspath "$2"); shift ;;
        --dom0-cmdline) need "$@"; dom0_cmdline=$2; shift ;;
        --module)       need "$@"; modules+=("$2"); shift ;;
        --guest)        need "$@"; guests+=("$(abspath "$2")"); shift ;;
        --xl)           need "$@"; xl_script=$2; shift ;;
        --timeout)      need "$@"; timeout=$2; shift ;;
        --qemu)         need "$@"; qemu_extra+=("$2"); shift ;;
        --disk)         need "$@"; disk=$(abspath "$2"); shift ;;
        --xen)          xen=1 ;;
        --kvm)          kvm=1 ;;
        --icount)       icount=1 ;;
        --gdb)          gdb=1 ;;
        --no-build)     build=0 ;;
        --keep-going)   keep_going=1 ;;
        --xl-socket)    need "$@"; xl_socket=$2; [ "$2" = none ] || xl_socket=$(abspath "$2"); shift ;;
        --dry-run)      dry_run=1 ;;
        -h|--help)      usage; exit 0 ;;
        *)              die "unknown option: $opt (see --help)" ;;
    esac
    shift
done
[[ $mem =~ ^[0-9]+$ ]] || die "--mem takes MiB, not '$mem'"
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout takes seconds, not '$timeout'"

# --dom0-mem: Xen's size syntax (a number with B, K, M or G; M if none).
# More than the machine has would silently become "everything".
dom0_mib() {
    local v=$1 n unit
    [[ $v =~ ^([0-9]+)([bBkKmMgG]?)$ ]] || die "--dom0-mem takes a size like 64M, not '$v'"
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]:-M}
    case $unit in
        b|B) echo $((n >> 20)) ;;
        k|K) echo $((n >> 10)) ;;
        m|M) echo "$n" ;;
        g|G) echo $((n << 10)) ;;
    esac
}
case $dom0_mem in
    *,*|*:*|-*) ;; # Xen's min:/max: forms: left to the hypervisor
    *) [ "$(dom0_mib "$dom0_mem")" -lt "$mem" ] ||
        die "--dom0-mem $dom0_mem is not less than the machine's memory (--mem $mem MiB)" ;;
esac

[ $keep_going = 0 ] || [ -n "$xl_script" ] || die "--keep-going needs --xl"

# Stopped by the user before or while QEMU runs: end QEMU (it puts the
# terminal back), say so, status 130.
qemu_pid=
stopped() {
    trap - INT TERM HUP
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    [ -z "$qemu_pid" ] || wait "$qemu_pid" 2>/dev/null || true
    echo >&2
    echo "run: stopped by the user (status 130)" >&2
    exit 130
}
trap stopped INT TERM HUP

if [ $build = 1 ]; then
    scripts/build.sh || exit 2
fi
scripts/ensure-qemu.sh

if [ $xen = 1 ]; then
    kernel=$root/$(scripts/fetch-xen.sh)
    opts="console=com1 dom0=pv loglvl=all guest_loglvl=all noreboot dom0_mem=$dom0_mem$append"
else
    kernel=$root/target/images/xen-core
    opts="console=com1 loglvl=all guest_loglvl=all dom0_mem=$dom0_mem$append"
fi
[ -n "$dom0" ] || dom0=$root/target/images/dom0
for f in "$kernel" "$dom0"; do
    [ -f "$f" ] || die "missing $f (run scripts/build.sh)"
done

# -initrd "path cmdline,path cmdline": commas separate modules, so a comma inside
# a command line is doubled; a path cannot contain a space or a comma.
module_arg() {
    local path=$1 cmdline=$2
    case "$path" in *[\ ,]*) die "QEMU cannot pass a module path with a space or comma: $path" ;; esac
    [ -f "$path" ] || die "missing module $path"
    if [ -n "$cmdline" ]; then
        printf '%s %s' "$path" "${cmdline//,/,,}"
    else
        printf '%s' "$path"
    fi
}
if [ -n "$xl_script" ]; then
    [ -z "$dom0_cmdline" ] || die "--xl and --dom0-cmdline both set Dom0's command line"
    dom0_cmdline="xl=\"$xl_script\""
    [ $keep_going = 0 ] || dom0_cmdline="$dom0_cmdline xl_keep_going"
fi
initrd=$(module_arg "$dom0" "$dom0_cmdline")
for m in ${modules[@]+"${modules[@]}"}; do
    path=${m%% *} cmdline=
    [ "$path" = "$m" ] || cmdline=${m#* }
    initrd="$initrd,$(module_arg "$(abspath "$path")" "$cmdline")"
done

# A dry run creates nothing: its command line names the files a real run
# would create, under a directory that does not exist yet.
if [ $dry_run = 1 ]; then
    tmp="${TMPDIR:-/tmp}/xen-core-run.XXXXXX"
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/xen-core-run.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
fi

# Dom0 (ours) gets its guests as a cpio archive in its initrd: the guest
# kernel images and the xl.cfg files under guests/.
if [ "$dom0" = "$root/target/images/dom0" ] && [ ${#modules[@]} -eq 0 ] && [ $dry_run = 1 ]; then
    initrd="$initrd,$tmp/guests.cpio"
elif [ "$dom0" = "$root/target/images/dom0" ] && [ ${#modules[@]} -eq 0 ]; then
    [ ${#guests[@]} -gt 0 ] || guests=("$root"/guests/*.cfg)
    command -v cpio >/dev/null || { echo "run: installing cpio" >&2; apt-get install -y -qq cpio >/dev/null; }
    mkdir -p "$tmp/archive/guests"
    cp "$root/target/images/pv-guest-kernel" "$tmp/archive/"
    for g in "${guests[@]}"; do
        cp "$g" "$tmp/archive/guests/"
        # The kernel and ramdisk a config names come along: an absolute path
        # at the same path in the archive, a relative one beside the config
        # (where Dom0's xl looks), as on a real Dom0's file system.
        sed -n -E "s/^[[:space:]]*(kernel|ramdisk)[[:space:]]*=[[:space:]]*[\"']([^\"']+)[\"'].*/\2/p" "$g" |
        while IFS= read -r f; do
            case $f in
                /*) src=$f dst=$tmp/archive$f ;;
                *) src=$(dirname "$g")/$f dst=$tmp/archive/guests/$f ;;
            esac
            [ -f "$src" ] || continue
            mkdir -p "$(dirname "$dst")" && cp "$src" "$dst"
        done
    done
    (cd "$tmp/archive" && find . -type f | cpio -o -H newc --quiet > "$tmp/guests.cpio")
    initrd="$initrd,$tmp/guests.cpio"
    echo "run: Dom0's initrd carries: pv-guest-kernel $(cd "$tmp/archive" && echo guests/*.cfg)" >&2
fi

# The serial console and QEMU's monitor share stdio (as -serial mon:stdio;
# the serial port, added last, has the input first),
# with signal=off: ^C reaches Dom0 instead of killing QEMU, and Ctrl-A x
# leaves. QEMU also copies the console to serial.log, which tells how the
# run ended.
qemu=(qemu-system-x86_64 -cpu max -m "$mem" -display none -no-reboot
      -chardev "stdio,id=con,mux=on,signal=off,logfile=$tmp/serial.log"
      -mon chardev=con,mode=readline -serial chardev:con
      -device isa-debug-exit,iobase=0xf4,iosize=0x04
      -d cpu_reset -D "$tmp/qemu.log"
      -kernel "$kernel" -append "$opts" -initrd "$initrd")
# The host channel (scripts/xl.sh): Dom0's second serial port (COM2) on a
# Unix socket that QEMU listens on; only the prompt serves it.
if [ -n "$xl_script" ]; then
    xl_socket=none
fi
# The default socket belongs to one run at a time (its owner's pid is kept
# next to it); a run started while another holds it gets its own, and says so.
if [ "$xl_socket" = "$xl_socket_default" ] && [ $dry_run = 0 ]; then
    owner=$(cat "$xl_socket.pid" 2>/dev/null || true)
    if [ -n "$owner" ] && [ "$owner" != $$ ] && kill -0 "$owner" 2>/dev/null; then
        xl_socket=$tmp/xl.sock
        echo "run: $xl_socket_default is run $owner's; this run's host channel is $xl_socket" >&2
    else
        mkdir -p "$(dirname "$xl_socket")"
        echo $$ > "$xl_socket.pid"
        trap 'rm -rf "$tmp"; [ "$(cat "$xl_socket.pid" 2>/dev/null)" != $$ ] || rm -f "$xl_socket.pid"' EXIT
    fi
fi
if [ "$xl_socket" != none ]; then
    case "$xl_socket" in *,*) die "--xl-socket: QEMU cannot take a path with a comma: $xl_socket" ;; esac
    [ $dry_run = 1 ] || mkdir -p "$(dirname "$xl_socket")"
    qemu+=(-chardev "socket,id=xl,path=$xl_socket,server=on,wait=off" -serial chardev:xl)
fi
if [ $kvm = 1 ]; then
    [ -e /dev/kvm ] || die "--kvm: /dev/kvm does not exist"
    qemu+=(-accel kvm)
else
    qemu+=(-accel tcg)
fi
if [ -n "$disk" ]; then
    case "$disk" in *,*) die "--disk: QEMU cannot take a path with a comma: $disk" ;; esac
    [ -e "$disk" ] || [ $dry_run = 1 ] || scripts/make-disk.sh "$disk" || exit 2
    # Legacy virtio (an I/O-port BAR) is what Dom0 drives; writeback cache,
    # so Dom0's flush is the host's fdatasync.
    qemu+=(-drive "file=$disk,if=none,id=disk0,format=raw,cache=writeback"
           -device virtio-blk-pci,drive=disk0,disable-modern=on)
fi
[ $icount = 0 ] || qemu+=(-icount shift=0)
[ $gdb = 0 ] || qemu+=(-s -S)
qemu+=(${qemu_extra[@]+"${qemu_extra[@]}"})
if [ "$timeout" -gt 0 ]; then
    qemu=(timeout --foreground "$timeout" "${qemu[@]}")
fi

if [ $dry_run = 1 ]; then
    printf '%q ' "${qemu[@]}"; echo
    exit 0
fi
if [ $gdb = 1 ]; then
    sym=$kernel; [ $xen = 1 ] && sym="<xen-syms>"
    echo "run: QEMU waits for gdb: gdb $sym -ex 'target remote :1234'" >&2
fi
echo "run: $(printf '%q ' "${qemu[@]}")" >&2
if [ "$xl_socket" != none ]; then
    hint=""; [ "$xl_socket" = "$root/target/xl.sock" ] || hint="XL_SOCKET=$xl_socket "
    echo "run: xl from another terminal: ${hint}scripts/xl.sh list (host channel $xl_socket)" >&2
fi

# Real Xen's last words (Debian's 4.17.7, noreboot) and the status they mean.
XEN_FINAL='\(XEN\) (Hardware Dom0 halted|Hardware Dom0 shutdown|Hardware Dom0 crashed|Panic on CPU)'
xen_status() {
    case "$1" in
        *"(XEN) Hardware Dom0 halted"*) echo 0 ;;
        *"(XEN) Hardware Dom0 shutdown: "*) echo 3 ;;
        *"(XEN) Hardware Dom0 shutdown (unknown reason"*) echo 1 ;;
        *"(XEN) Hardware Dom0 crashed"*) echo 5 ;;
        *"(XEN) Panic on CPU"*) echo 7 ;;
    esac
}

# Real Xen halts and waits: end QEMU once its final line is in the log, after
# a moment for the rest of a crash or panic report.
watch_xen_log() {
    local line
    while kill -0 "$qemu_pid" 2>/dev/null; do
        line=$(grep -a -m1 -E "$XEN_FINAL" "$tmp/serial.log" 2>/dev/null || true)
        if [ -n "$line" ]; then
            xen_status "$line" > "$tmp/status"
            sleep 0.3
            kill "$qemu_pid" 2>/dev/null || true
            return
        fi
        sleep 0.2
    done
}

# QEMU runs in the background so that a signal to this script is handled at
# once (bash runs a trap only after a foreground command ends). Its standard
# input is ours; when that is not a terminal, ^D follows its end, so Dom0's
# prompt sees the end of input.
exec 3<&0
if [ -t 0 ]; then
    "${qemu[@]}" <&3 &
    qemu_pid=$!
else
    # Through a FIFO, so that $! is QEMU's own pid. Held back until Dom0's
    # prompt is up: the hypervisor resets the UART's FIFO when it starts,
    # which would drop what was sent before.
    mkfifo "$tmp/input"
    { until grep -aq "^xl: type 'help'" "$tmp/serial.log" 2>/dev/null; do sleep 0.2; done
      cat <&3; printf '\004'; } > "$tmp/input" &
    feeder=$!
    "${qemu[@]}" < "$tmp/input" &
    qemu_pid=$!
fi
[ $xen = 0 ] || watch_xen_log &
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
trap - INT TERM HUP
# What is left of the input feeder (its cat, then itself) and the log watcher.
[ -z "$feeder" ] || pkill -P "$feeder" 2>/dev/null || true
# (disowned first: bash would report each as "Terminated")
left=$(jobs -p); disown -a
[ -z "$left" ] || kill $left 2>/dev/null || true

log=$tmp/serial.log
final=$(grep -a -m1 -E "$XEN_FINAL" "$log" 2>/dev/null || true)
if [ -e "$tmp/status" ]; then
    rc=$(cat "$tmp/status")
elif [ "$timeout" -gt 0 ] && [ "$qemu_rc" = 124 ]; then
    rc=124
elif [ "$qemu_rc" -gt 128 ]; then
    # Killed by a signal, not by this script (that is stopped() above).
    rc=130
elif [ "$qemu_rc" = 0 ] && grep -q "Triple fault" "$tmp/qemu.log" 2>/dev/null; then
    rc=9
elif [ "$qemu_rc" = 0 ] && [ -z "$final" ]; then
    # QEMU ended well without the hypervisor's last words: quit by the user.
    rc=130
else
    rc=$qemu_rc
fi
if [ "$rc" = 0 ] && grep -aq "^dom0: xl script failed" "$log" 2>/dev/null; then
    rc=1
fi
case $rc in
    0) what="Dom0 powered off" ;;
    1) what="an xl command failed" ;;
    3) what="Dom0 rebooted" ;;
    5) what="Dom0 crashed" ;;
    7) what="hypervisor panic" ;;
    9) what="triple fault" ;;
    124) what="timeout after ${timeout}s" ;;
    130) what="stopped by the user (QEMU quit or was killed)" ;;
    *) what="QEMU exited with $qemu_rc" ;;
esac
echo "run: $what (status $rc)" >&2
exit "$rc"
