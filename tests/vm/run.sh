#!/bin/bash
# Runs a command as root in a throwaway QEMU VM: Debian's kernel, a busybox
# initramfs, and this host's / shared read-only over 9p under a tmpfs
# overlay, so everything installed and built here (target/debug) is there
# too, and nothing the command writes outlives the VM.
#
#   tests/vm/run.sh [--systemd] [--disk SIZE]... [--cpus N] [--mem SIZE]
#                   [--timeout SECONDS] -- COMMAND [ARGS...]
#   tests/vm/run.sh --check      # can this machine run it? (the reason if not)
#
# COMMAND runs under bash in the caller's directory; its output streams to
# stdout and its exit status is ours (124: the VM timed out; 125: the VM
# gave no result). --disk adds a fresh sparse virtio disk (/dev/vda, then
# /dev/vdb, ...). --systemd boots systemd as PID 1 (with udev) and runs
# COMMAND as a service once multi-user.target is reached.
# The kernel and the initramfs are cached under $MYSNAP_CACHE/vm and built
# again when this script changes. tests/setup.sh vm installs the packages.
set -euo pipefail
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}/vm
systemd=0 cpus=2 mem=2G timeout=900 disks=()
usage() { echo "usage: $0 [--systemd] [--disk SIZE]... [--cpus N] [--mem SIZE] [--timeout S] -- COMMAND [ARGS...]" >&2; exit 64; }
while [ $# -gt 0 ]; do
    case $1 in
        --systemd) systemd=1 ;;
        --disk) disks+=("$2"); shift ;;
        --cpus) cpus=$2; shift ;;
        --mem) mem=$2; shift ;;
        --timeout) timeout=$2; shift ;;
        --check) check=1 ;;
        --) shift; break ;;
        *) usage ;;
    esac
    shift
done

kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1 || true)
kver=${kernel#/boot/vmlinuz-}
cannot=
if ! command -v qemu-system-x86_64 >/dev/null; then cannot="no qemu-system-x86_64"
elif [ -z "$kernel" ]; then cannot="no kernel in /boot"
elif [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then cannot="no static /bin/busybox"
elif [ ! -d "/lib/modules/$kver" ]; then cannot="no modules for $kver"
elif [ ! -r /usr/share/qemu/qboot.rom ]; then cannot="no /usr/share/qemu/qboot.rom"
fi
if [ -n "${check:-}" ]; then
    [ -z "$cannot" ] || { echo "$cannot (tests/setup.sh vm installs what is missing)"; exit 1; }
    exit 0
fi
[ -n "$cannot" ] && { echo "vm: cannot run: $cannot (tests/setup.sh vm installs it)" >&2; exit 69; }
[ $# -gt 0 ] || usage
mkdir -p "$cache"

# Builds of the cached files are serialised: tests may boot VMs in parallel.
exec 9>"$cache/lock"
flock 9
# The ELF vmlinux inside vmlinuz boots directly (PVH entry): no decompression
# in the guest, which takes seconds under software emulation.
vmlinux=$cache/vmlinux-$kver
if [ ! -s "$vmlinux" ] && grep -q '^CONFIG_PVH=y' "/boot/config-$kver"; then
    offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kernel" | head -n1 | cut -d: -f1)
    tail -c +$((offset + 1)) "$kernel" | xz -dc 2>/dev/null > "$vmlinux.tmp" || true
    if [ "$(head -c4 "$vmlinux.tmp")" = $'\x7fELF' ]; then mv "$vmlinux.tmp" "$vmlinux"; else rm -f "$vmlinux.tmp"; fi
fi
[ -s "$vmlinux" ] && kernel=$vmlinux

initrd=$cache/initrd-$kver-$(sha256sum < "$0" | cut -c1-12).cpio.gz
if [ ! -s "$initrd" ]; then
    rm -f "$cache"/initrd-*.cpio.gz
    tree=$(mktemp -d "$cache/initrd.XXXXXX")
    mkdir -p "$tree"/{bin,modules,proc,sys,dev,host,rw,root}
    cp /bin/busybox "$tree/bin/"
    # What mounting the root needs; everything else loads from the host's
    # /lib/modules once the root is up.
    for module in virtio_pci virtio_blk 9pnet_virtio 9p overlay; do
        modprobe -S "$kver" --show-depends "$module" | awk '$1 == "insmod" { print $2 }'
    done | awk '!seen[$0]++' | while read -r ko; do
        cp "$ko" "$tree/modules/" && basename "$ko" >> "$tree/modules/order"
    done
    cat > "$tree/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo mysnap-vm > /proc/sys/kernel/hostname
for m in $(cat /modules/order); do insmod /modules/$m; done
p9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o ro,$p9,cache=loose host /host || { echo "vm: cannot mount the host's root"; poweroff -f; }
mount -t tmpfs -o mode=755 rw /rw && mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work root /root
r=/root
mkdir -p $r/vmctl && mount -t 9p -o $p9,cache=none vmctl $r/vmctl
for d in proc sys dev; do mount --move /$d $r/$d; done
mount -t tmpfs -o mode=755 run $r/run
mkdir -p $r/dev/pts $r/dev/shm && mount -t devpts devpts $r/dev/pts && mount -t tmpfs shm $r/dev/shm
stty -onlcr < /dev/console   # the host reads the console as a file: no CRs
if grep -q mysnap.systemd $r/proc/cmdline; then
    units=$r/etc/systemd/system
    cp $r/vmctl/command.service $units/ && mkdir -p $units/multi-user.target.wants
    ln -sf ../command.service $units/multi-user.target.wants/
    # systemd takes a host with these files for a container and ignores the kernel command line.
    rm -f $r/.dockerenv $r/run/.containerenv
    mkdir -p $r/etc/tmpfiles.d && : > $r/etc/tmpfiles.d/tmp.conf
    exec switch_root $r /lib/systemd/systemd
fi
# Without udev LVM makes its device nodes itself and must not wait for udev.
printf 'activation {\n udev_sync = 0\n udev_rules = 0\n}\ndevices {\n obtain_device_list_from_udev = 0\n}\n' > $r/etc/lvm/lvmlocal.conf
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup 2>/dev/null
ip link set lo up   # servers on loopback (S3, MariaDB over TCP)
# The kernel's module autoloading (mount -t xfs, dmsetup) uses the root's modprobe.
printf '#!/bin/sh\nexec chroot /root /sbin/modprobe "$@"\n' > /bin/root-modprobe && chmod +x /bin/root-modprobe
echo /bin/root-modprobe > $r/proc/sys/kernel/modprobe
chroot $r /bin/bash /vmctl/command.sh < /dev/console > /dev/console 2>&1
echo $? > $r/vmctl/status
sync; echo 0 > $r/proc/sys/kernel/printk; poweroff -f
INIT
    chmod +x "$tree/init"
    (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$tree"
fi
flock -u 9

ctl=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$ctl"' EXIT
{
    echo "cd $(printf %q "$PWD") 2>/dev/null || cd /"
    echo "export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LVM_SUPPRESS_FD_WARNINGS=1"
    printf '%q ' "$@"
    echo
} > "$ctl/command.sh"
append="console=ttyS0 quiet loglevel=1 panic=-1"
if [ $systemd = 1 ]; then
    append+=" mysnap.systemd systemd.unit=multi-user.target systemd.show_status=0"
    for unit in serial-getty@ttyS0 getty@tty1 mariadb postgresql; do append+=" systemd.mask=$unit.service"; done
    cat > "$ctl/command.service" <<'UNIT'
[Unit]
Description=the command given to tests/vm/run.sh
After=multi-user.target
SuccessAction=poweroff-immediate
FailureAction=poweroff-immediate
[Service]
Type=exec
ExecStart=/bin/bash /vmctl/command.sh
ExecStopPost=/bin/sh -c 'echo "$EXIT_STATUS" > /vmctl/status; echo 0 > /proc/sys/kernel/printk'
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
UNIT
fi

drives=()
for i in "${!disks[@]}"; do
    truncate -s "${disks[$i]}" "$ctl/disk$i.img"
    drives+=(-drive "file=$ctl/disk$i.img,format=raw,if=virtio,cache=unsafe")
done

# KVM when it can run a stock kernel; kvm_pvm (nested clouds) cannot: TCG.
if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then
    accel=(-accel kvm -cpu host)
else
    accel=(-accel tcg,thread=multi -cpu max)
fi
set +e
timeout --foreground "$timeout" qemu-system-x86_64 "${accel[@]}" -M pc -smp "$cpus" -m "$mem" \
    -nodefaults -no-user-config -display none -no-reboot -bios /usr/share/qemu/qboot.rom \
    -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$append" "${drives[@]}" \
    -fsdev local,id=host,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=host,mount_tag=host \
    -fsdev local,id=vmctl,path="$ctl",security_model=none,multidevs=remap \
    -device virtio-9p-pci,fsdev=vmctl,mount_tag=vmctl < /dev/null
qemu=$?
set -e
[ $qemu = 124 ] && { echo "vm: timed out after ${timeout}s" >&2; exit 124; }
[ -s "$ctl/status" ] || { echo "vm: the VM ended (qemu status $qemu) without a result" >&2; exit 125; }
exit "$(cat "$ctl/status")"
