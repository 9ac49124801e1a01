#!/bin/bash
# lvcreate under strace, for the kill points of the VM tests: installed as
# `lvcreate` in a directory early in PATH, it does what MYSNAP_INJECT says.
#
#   trace FILE     records lvcreate's ioctls in FILE
#   kill N FILE    SIGKILLs lvcreate as it enters its Nth ioctl
#   pause N FILE   holds lvcreate as it enters its Nth ioctl until strace is
#                  killed (then the ioctl runs, and lvcreate goes on)
#   (unset)        plain lvcreate
#
# FILE gets strace's record, one line per ioctl: while lvcreate is held, it
# has N-1 whole lines and the Nth ioctl's entry without its end. strace
# keeps the signal mask it was given, so lvcreate blocks SIGTERM as it does
# under lvm-snap.
read -r mode n file <<< "${MYSNAP_INJECT:-}"
strace=(strace -qq -e trace=ioctl)
case $mode in
    trace) exec "${strace[@]}" -o "$n" /sbin/lvcreate "$@" ;;
    kill) exec "${strace[@]}" -o "$file" -e inject=ioctl:signal=SIGKILL:when="$n" /sbin/lvcreate "$@" ;;
    pause) exec "${strace[@]}" -o "$file" -e inject=ioctl:delay_enter=3600s:when="$n" /sbin/lvcreate "$@" ;;
    *) exec /sbin/lvcreate "$@" ;;
esac
