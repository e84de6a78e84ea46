#!/usr/bin/env bash
# xl from the host: runs one xl command in the Dom0 that scripts/run.sh
# started, over its host channel (a Unix socket QEMU connects to Dom0's
# second serial port). Output and exit status are the command's.
set -euo pipefail

usage() {
    cat <<'EOF2'
Usage: scripts/xl.sh [--socket PATH] <subcommand> [args...]

Run an xl subcommand in Dom0 (booted by scripts/run.sh, in another
terminal or in the background) and print its output; the exit status is
the command's.

  --socket PATH   run.sh's --xl-socket (default: $XL_SOCKET, else
                  target/xl.sock, run.sh's default)
  -h, --help      this text ('scripts/xl.sh help' lists the subcommands)

xl create FILE sends FILE, and the kernel and ramdisk it names when they are
files on the host, to Dom0 (up to 2 MiB in all); other names are looked up
in Dom0's initrd.

Exit status:
  0    the command succeeded
  1    the command failed (it printed why)
  2    bad usage, or Dom0 refused the request
  3    Dom0 not reachable (no run.sh, QEMU ended, Dom0 not answering)
  130  ^C: the command was stopped in Dom0 (as ^C at its prompt)
Examples:
  scripts/run.sh &                 # or in another terminal
  scripts/xl.sh create guests/hello.cfg
  scripts/xl.sh list
  scripts/xl.sh destroy hello
EOF2
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
root=$PWD
cd - >/dev/null
tool=$root/target/images/xl
if [ ! -x "$tool" ]; then
    echo "xl: building the host tool (scripts/build.sh)" >&2
    "$root/scripts/build.sh" >/dev/null 2>&1 || { echo "xl: scripts/build.sh failed" >&2; exit 2; }
fi
export XL_SOCKET=${XL_SOCKET:-$root/target/xl.sock}
exec "$tool" "$@"
