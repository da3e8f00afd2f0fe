#!/usr/bin/env bash
# The VM test tier (`npm run test:vm`): boots a Debian 12 guest with systemd on
# cgroup v2 and runs dist/test/vm/*.vmtest.js there with ava, as an
# unprivileged user in that user's systemd session (lingering), with the
# checkout shared read-only over 9p. Resource limits cannot be shown on a
# cgroup v1 host; this tier shows them on a real systemd.
#
#   bash test/vm/run.sh [AVA_ARGS...]      (after npm run build)
#
# The guest image is built once (as root: debootstrap from Debian's mirror,
# ~1 min) and cached in $NOOK_VM_CACHE (default ~/.cache/nook-vm) under a
# hash of the recipe, the kernel and the node binary. Knobs: NOOK_VM_CACHE,
# VM_TIMEOUT (s), ACCEL=kvm, VM_SMP, VM_MEM. Exit status: ava's in the guest.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
say() { echo "test:vm: $*"; }
die() { echo "test:vm: $*" >&2; exit 2; }

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86 qemu-utils debootstrap linux-image-amd64 e2fsprogs cpio kmod)"
NODE=$(command -v node) || die "node is not on PATH"
KVER=${KVER:-$(ls /lib/modules 2>/dev/null | grep -- '-amd64$' | sort -V | tail -1 || true)}
[ -n "$KVER" ] && [ -f "/boot/vmlinuz-$KVER" ] || die "no Debian kernel to boot the guest with (apt-get install linux-image-amd64)"
[ -f "$CHECKOUT/dist/test/vm/cgroups.vmtest.js" ] || die "dist/test/vm is missing: run npm run build first"

# --- the guest image, cached by what it is made of ---------------------------
key=$( { cat "$HERE/build-image.sh" "$HERE/guest/init" "$HERE/guest/vmtest-run"; echo "$KVER"; "$NODE" --version; stat -c %s "$(readlink -f "$NODE")"; } | sha256sum | cut -c1-16)
CACHE=${NOOK_VM_CACHE:-${HOME:-/root}/.cache/nook-vm}
IMAGE=$CACHE/$key
t0=$(date +%s)
if [ ! -f "$IMAGE/rootfs.img" ]; then
  [ "$(id -u)" = 0 ] || die "the guest image $IMAGE is not built yet, and building it needs root (debootstrap): run sudo bash test/vm/run.sh once"
  say "building the guest image in $IMAGE (kernel $KVER)"
  mkdir -p "$CACHE"
  # Older images of this recipe are of no further use.
  find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name "$key.tmp" -exec rm -rf {} +
  OUT=$IMAGE KVER=$KVER NODE_BIN=$(readlink -f "$NODE") sh "$HERE/build-image.sh"
else
  say "guest image $IMAGE (cached)"
fi
t1=$(date +%s)

# --- what the guest reads: the test images, readable by its user -----------
FIXTURES=$("$NODE" "$CHECKOUT/dist/test/fixtures/build-images.js")
case "$FIXTURES" in "$CHECKOUT"/*) ;; *) die "the test images are outside the checkout ($FIXTURES): the guest cannot see them" ;; esac
SHARE=$CHECKOUT
COPY=""
cleanup() { [ -z "$COPY" ] || rm -rf "$COPY"; }
trap cleanup EXIT
if [ "$(id -u)" = 0 ]; then
  # The guest's user (uid 1000) reads the checkout through 9p with the host's modes.
  if [ -z "$(find "$CHECKOUT" -maxdepth 0 -perm -o=rx)" ]; then
    COPY=$(mktemp -d /var/tmp/nook-vm-share.XXXXXX)
    say "the checkout is not world-readable: sharing a copy ($COPY)"
    tar -C "$CHECKOUT" --exclude=./.git -cf - . | tar -C "$COPY" -xf -
    SHARE=$COPY
  fi
  for dir in dist node_modules test/fixtures/cache test/vm; do chmod -R a+rX "$SHARE/$dir"; done
  chmod a+rx "$SHARE" "$SHARE/test" "$SHARE/test/fixtures"
  chmod a+r "$SHARE/package.json"
fi
FIXTURES_IN_GUEST=/mnt/project/${FIXTURES#"$CHECKOUT"/}

# --- run ava in the guest -----------------------------------------------------
SCRIPT=$(mktemp)
trap 'rm -f "$SCRIPT"; cleanup' EXIT
{
  echo 'set -u'
  echo "export NOOK_TEST_FIXTURES='$FIXTURES_IN_GUEST' TMPDIR=/tmp"
  printf 'exec node node_modules/ava/entrypoints/cli.mjs --config test/vm/ava.config.mjs'
  for arg in "$@"; do printf " '%s'" "${arg//\'/\'\\\'\'}"; done
  echo
} > "$SCRIPT"
say "booting the guest (software emulation unless ACCEL=kvm)"
LOG=$(mktemp)
trap 'rm -f "$SCRIPT" "$LOG"; cleanup' EXIT
set +e
sh "$HERE/run-vm.sh" "$IMAGE" "$SHARE" "$SCRIPT" user | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
t2=$(date +%s)
passed=$(tr -d '\r' < "$LOG" | grep -cE '^ +✔ ' || true)
failed=$(tr -d '\r' < "$LOG" | grep -cE '^ +✘ ' || true)
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
say "image $((t1 - t0)) s, boot + tests $((t2 - t1)) s, exit status $rc"
echo "vm: $passed passed, $failed failed"
exit "$rc"
