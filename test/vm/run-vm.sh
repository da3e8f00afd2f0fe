#!/bin/sh
# Boots the VM test guest built by build-image.sh and runs one shell script in it.
#
#   sh test/vm/run-vm.sh IMAGE_DIR PROJECT_DIR SCRIPT [user|root]
#
# PROJECT_DIR is shared read-only at /mnt/project (the script's working
# directory); SCRIPT runs as the unprivileged user in its systemd user session
# (or as root). The serial console is streamed to stdout; the exit status is
# the script's (125 when the guest never reported one). Software emulation
# (TCG) unless ACCEL=kvm; the disk is a throw-away snapshot of the image.
set -u
IMAGE=$1 PROJECT=$(realpath "$2") SCRIPT=$3 AS=${4:-user}
IO=$(mktemp -d "${TMPDIR:-/tmp}/nook-vmio.XXXXXX")
trap 'rm -rf "$IO"' EXIT
cp "$SCRIPT" "$IO/cmd"
chmod 0755 "$IO"
chmod 0644 "$IO/cmd"
timeout --kill-after=10s "${VM_TIMEOUT:-1200}" qemu-system-x86_64 \
  -accel "${ACCEL:-tcg,thread=multi}" -cpu "${VM_CPU:-max}" -smp "${VM_SMP:-2}" -m "${VM_MEM:-2048}" \
  -nographic -no-reboot -nic none \
  -kernel "$IMAGE/vmlinux" -initrd "$IMAGE/initramfs.img" \
  -append "console=ttyS0 quiet loglevel=3 systemd.show_status=error panic=-1 systemd.unit=vmtest.target vmtest.user=$AS" \
  -drive "file=$IMAGE/rootfs.img,if=virtio,format=raw,cache=unsafe,snapshot=on" \
  -virtfs "local,path=$PROJECT,mount_tag=project,security_model=none,readonly=on,id=project" \
  -virtfs "local,path=$IO,mount_tag=vmio,security_model=none,id=vmio" </dev/null
qemu_rc=$?
if [ ! -s "$IO/status" ]; then
  echo "run-vm: the guest reported no exit status (qemu exited $qemu_rc)" >&2
  exit 125
fi
exit "$(cat "$IO/status")"
