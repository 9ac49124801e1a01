#!/bin/bash
# Installs what the tests, the demo and the benchmarks need on a fresh
# Debian machine: Debian packages (MariaDB among them; the tests run their
# own throwaway instances), and, cached under $MYSNAP_CACHE (~/.cache/mysnap):
#   s3s-fs  S3 server on loopback with SigV4 enforced (built with cargo)
#   venv    moto, boto3 and the aws CLI (from PyPI)
# and the VM test bed's packages (QEMU, Debian's kernel, busybox, LVM, mkfs);
# for all, also the packaging tools (debhelper, lintian, rpmbuild: make deb, make rpm);
# tests/vm/run.sh builds and caches the VM's kernel and initramfs itself.
# Usage: tests/setup.sh [s3s|vm|all]   (s3s: the stream demo; vm: the VM demo)
set -euo pipefail
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
what=${1:-all}
s3s_version=0.14.1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"

apt_missing=()
command -v groff >/dev/null || apt_missing+=(groff-base)
[ -x /usr/bin/time ] || apt_missing+=(time)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_missing+=(python3-venv)
command -v cc >/dev/null || apt_missing+=(gcc)
[ -x /usr/sbin/mariadbd ] || apt_missing+=(mariadb-server)
command -v mariadb >/dev/null || apt_missing+=(mariadb-client)
command -v openssl >/dev/null || apt_missing+=(openssl)
command -v mylvmbackup >/dev/null || apt_missing+=(mylvmbackup)
command -v pigz >/dev/null || apt_missing+=(pigz)
command -v myloader >/dev/null || apt_missing+=(mydumper)
if [ "$what" != s3s ]; then
    command -v qemu-system-x86_64 >/dev/null || apt_missing+=(qemu-system-x86)
    compgen -G '/boot/vmlinuz-*' >/dev/null || apt_missing+=(linux-image-amd64)
    # the VM's initramfs needs the static busybox, not the dynamic one
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || apt_missing+=(busybox-static)
    # strace holds and kills lvcreate at its ioctls for the kill tests
    for tool in lvm:lvm2 mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs modprobe:kmod cpio:cpio xz:xz-utils strace:strace; do
        command -v "${tool%%:*}" >/dev/null || apt_missing+=("${tool#*:}")
    done
fi
if [ "$what" = all ]; then
    # make deb and make rpm, and tests/packages.rs which inspects their packages
    for tool in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian rpmbuild:rpm; do
        command -v "${tool%%:*}" >/dev/null || apt_missing+=("${tool#*:}")
    done
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

s3s="$cache/s3s-fs-$s3s_version/bin/s3s-fs"
if [ ! -x "$s3s" ]; then
    echo "setup: building s3s-fs $s3s_version (about 5 minutes, once)"
    cargo install --quiet "s3s-fs@$s3s_version" --locked --features binary --root "$cache/s3s-fs-$s3s_version"
fi
[ "$what" = all ] || exit 0

venv="$cache/venv"
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    echo "setup: installing moto, boto3 and awscli into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
