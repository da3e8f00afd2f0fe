#!/bin/sh
# Builds the guest of the VM test tier into OUT (default: the cache dir that
# test/vm/run.sh computes): a Debian 12 root file system with systemd on
# cgroup v2, an unprivileged user "user" (uid 1000, subordinate ids, lingering)
# and what nook drives (uidmap, fuse-overlayfs, slirp4netns, busybox-static),
# plus the host's own node binary (same Debian release, so its libraries are
# there). Needs root (debootstrap) and Debian's mirror.
#
#   OUT=DIR KVER=6.1.0-xx-amd64 sh test/vm/build-image.sh
#
# Produces OUT/rootfs.img (ext4, sparse), OUT/initramfs.img, OUT/vmlinux.
# Writes into OUT.tmp and renames at the end: a half-built image is never used.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:?OUT=DIR is required}
KVER=${KVER:?KVER is required (a kernel in /lib/modules and /boot)}
NODE_BIN=${NODE_BIN:-$(command -v node)}
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

[ "$(id -u)" = 0 ] || { echo "build-image: run as root (debootstrap)" >&2; exit 2; }
for tool in debootstrap mkfs.ext4 cpio modprobe python3; do
  command -v $tool >/dev/null || { echo "build-image: $tool is missing (apt-get install qemu-system-x86 qemu-utils debootstrap linux-image-amd64 e2fsprogs cpio kmod)" >&2; exit 2; }
done
[ -f /boot/vmlinuz-$KVER ] && [ -d /lib/modules/$KVER ] || { echo "build-image: kernel $KVER is not installed (apt-get install linux-image-amd64)" >&2; exit 2; }

TMP=$OUT.tmp
rm -rf "$TMP"
mkdir -p "$TMP"
R=$TMP/rootfs
t0=$(date +%s)

# --- root file system -------------------------------------------------------
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,udev,kmod,procps,iproute2,uidmap,fuse-overlayfs,slirp4netns,busybox-static \
  bookworm "$R" "$MIRROR" > "$TMP/debootstrap.log" 2>&1 ||
  { tail -20 "$TMP/debootstrap.log" >&2; echo "build-image: debootstrap failed (log: $TMP/debootstrap.log)" >&2; exit 1; }
t1=$(date +%s)

echo nookvm > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 nookvm\n' > "$R/etc/hosts"
cat > "$R/etc/fstab" <<'EOT'
/dev/vda  /             ext4  rw,noatime,errors=remount-ro  0 1
project   /mnt/project  9p    trans=virtio,version=9p2000.L,msize=1048576,cache=none,ro,nofail,x-systemd.device-timeout=5s  0 0
vmio      /mnt/io       9p    trans=virtio,version=9p2000.L,msize=1048576,cache=none,nofail,x-systemd.device-timeout=5s  0 0
EOT
mkdir -p "$R/mnt/project" "$R/mnt/io"
# The unprivileged test user, with subordinate ids and lingering (a user
# manager without a login, as `loginctl enable-linger user` does).
chroot "$R" useradd -m -u 1000 -s /bin/bash user
grep -q '^user:' "$R/etc/subuid" || echo 'user:100000:65536' >> "$R/etc/subuid"
grep -q '^user:' "$R/etc/subgid" || echo 'user:100000:65536' >> "$R/etc/subgid"
mkdir -p "$R/var/lib/systemd/linger" && touch "$R/var/lib/systemd/linger/user"
chroot "$R" passwd -d root >/dev/null
# Node: the host's binary (same Debian release).
install -m 0755 "$NODE_BIN" "$R/usr/local/bin/node"
# The test driver, started instead of a login prompt (systemd.unit=vmtest.target).
install -m 0755 "$HERE/guest/vmtest-run" "$R/usr/local/sbin/vmtest-run"
cat > "$R/etc/systemd/system/vmtest.service" <<'EOT'
[Unit]
Description=Run the VM test command, record its exit status, power off
# Wants, not Requires: a restart of the user manager must not restart the test.
Wants=dbus.service systemd-logind.service systemd-user-sessions.service user@1000.service mnt-project.mount mnt-io.mount
After=dbus.service systemd-logind.service systemd-user-sessions.service user@1000.service mnt-project.mount mnt-io.mount
[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
ExecStart=/usr/local/sbin/vmtest-run
EOT
cat > "$R/etc/systemd/system/vmtest.target" <<'EOT'
[Unit]
Description=VM test target
Requires=basic.target vmtest.service
After=basic.target vmtest.service
AllowIsolate=yes
EOT
# Nothing in the test guest needs timers, time sync or binfmt.
chroot "$R" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer systemd-timesyncd.service proc-sys-fs-binfmt_misc.automount >/dev/null 2>&1 || true
rm -rf "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/usr/share/locale/* "$R"/usr/share/man/* "$R"/usr/share/doc/*

# --- initramfs: busybox + the modules to mount the root and run containers ---
I=$TMP/initramfs
mkdir -p "$I/bin" "$I/dev" "$I/proc" "$I/sys" "$I/newroot" "$I/lib/modules"
cp "$R/bin/busybox" "$I/bin/busybox"
for applet in sh mount umount switch_root insmod sleep cat seq; do ln -s busybox "$I/bin/$applet"; done
: > "$I/modlist"
for module in virtio_pci virtio_blk ext4 9pnet_virtio 9p overlay fuse tun crc32c_intel; do
  modprobe -S "$KVER" --show-depends "$module" 2>/dev/null | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r file; do
  cp "$file" "$I/lib/modules/"
  echo "/lib/modules/$(basename "$file")" >> "$I/modlist"
done
install -m 0755 "$HERE/guest/init" "$I/init"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) > "$TMP/initramfs.img"
rm -rf "$I"

# --- kernel: the uncompressed vmlinux boots directly (PVH), faster under TCG --
python3 - "/boot/vmlinuz-$KVER" "$TMP/vmlinux" <<'EOT'
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("build-image: the kernel is not xz-compressed")
open(sys.argv[2], "wb").write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:]))
EOT

# --- disk image -------------------------------------------------------------
truncate -s "${SIZE:-3G}" "$TMP/rootfs.img"
mkfs.ext4 -q -F -L nookvm -d "$R" "$TMP/rootfs.img"
rm -rf "$R"
t2=$(date +%s)

rm -rf "$OUT"
mv "$TMP" "$OUT"
echo "build-image: debootstrap $((t1 - t0)) s, the rest $((t2 - t1)) s -> $OUT"
