#!/usr/bin/env bash
# Installs nook from this checkout for the user who runs it, and checks the
# host. Safe to run again: each step only does what is not done yet.
#
#   ./install.sh && nook run --rm localhost/busybox echo hello
#
# 1. the host programs nook drives: newuidmap/newgidmap (uidmap), slirp4netns,
#    fuse-overlayfs, util-linux, a static busybox, a C compiler (the executor,
#    helpers/nook-exec.c, is compiled at build time). Installed when this runs
#    as root or `sudo -n` works; otherwise the exact command is printed.
# 2. npm ci (when node_modules is out of date), npm run build
# 3. `nook` (and `nook-runtime`) on PATH: /usr/local/bin for root, ~/.local/bin for a user
# 4. the default image localhost/busybox:latest, from the host's busybox
# 5. nook doctor: what works here, and the fix for what does not
set -euo pipefail

NOOK_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$NOOK_HOME"

say() { echo "install: $*"; }
warn() { echo "install: warning: $*" >&2; }
die() { echo "install: $*" >&2; exit 1; }

# sbin directories hold newuidmap on some distributions and are not on every user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# ------------------------------------------------------------ host programs ---

PM=""
if command -v apt-get >/dev/null; then PM=apt
elif command -v dnf >/dev/null; then PM=dnf
elif command -v zypper >/dev/null; then PM=zypper
fi

# package NEED: the package providing NEED on this distribution
package_for() {
  case "$PM:$1" in
    apt:idmap) echo uidmap ;;
    apt:busybox) echo busybox-static ;;
    apt:cc) echo "gcc libc6-dev" ;;
    dnf:idmap) echo shadow-utils ;;
    dnf:busybox) echo busybox ;;          # Fedora's busybox is statically linked
    dnf:cc) echo "gcc glibc-devel" ;;
    zypper:idmap) echo shadow ;;
    zypper:busybox) echo busybox-static ;;
    zypper:cc) echo "gcc glibc-devel" ;;
    *:fuse-overlayfs) echo "fuse-overlayfs fuse3" ;;
    *:slirp4netns) echo slirp4netns ;;
    *:util-linux) echo util-linux ;;
    *) echo "$1" ;;
  esac
}

static_busybox() {
  local bb
  bb=$(command -v busybox) || return 1
  # A dynamic busybox cannot run in an image with no libc. `ldd` of a static
  # binary says so (and exits 1, hence the `|| true`).
  local out
  out=$(LC_ALL=C ldd "$bb" 2>&1 || true)
  case "$out" in
    *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
    *) return 1 ;;
  esac
}

c_compiler_works() {
  command -v cc >/dev/null || command -v gcc >/dev/null || return 1
  local compiler
  compiler=$(command -v cc || command -v gcc)
  printf '#include <sched.h>\n#include <sys/mount.h>\n#include <sys/prctl.h>\nint main(void) { return 0; }\n' |
    "$compiler" -x c - -o /dev/null 2>/dev/null
}

missing_needs() {
  local needs=()
  command -v newuidmap >/dev/null && command -v newgidmap >/dev/null || needs+=(idmap)
  command -v slirp4netns >/dev/null || needs+=(slirp4netns)
  command -v fuse-overlayfs >/dev/null || needs+=(fuse-overlayfs)
  command -v unshare >/dev/null && command -v nsenter >/dev/null && command -v mount >/dev/null || needs+=(util-linux)
  static_busybox || needs+=(busybox)
  c_compiler_works || needs+=(cc)
  echo "${needs[@]}"
}

install_command() {
  local packages=$1
  case "$PM" in
    apt) echo "apt-get update && apt-get install -y $packages" ;;
    dnf) echo "dnf install -y $packages" ;;
    zypper) echo "zypper --non-interactive install $packages" ;;
  esac
}

needs=$(missing_needs)
if [ -n "$needs" ]; then
  [ -n "$PM" ] || die "missing: $needs, and no apt-get, dnf or zypper here to install them; install the equivalent packages and run ./install.sh again"
  packages=""
  for need in $needs; do packages="$packages $(package_for "$need")"; done
  packages=${packages# }
  command=$(install_command "$packages")
  if [ "$(id -u)" = 0 ]; then
    say "installing $packages"
    DEBIAN_FRONTEND=noninteractive sh -c "$command"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing $packages (sudo)"
    sudo DEBIAN_FRONTEND=noninteractive sh -c "$command"
  else
    die "nook needs packages this user cannot install: $packages
Ask an administrator to run:

    sudo sh -c '$command'

then run ./install.sh again."
  fi
  needs=$(missing_needs)
  [ -z "$needs" ] || die "still missing after the install: $needs"
fi
say "host programs: newuidmap, newgidmap, slirp4netns, fuse-overlayfs, util-linux, static busybox, C compiler: ok"

# -------------------------------------------------------------- node, build ---

command -v node >/dev/null && command -v npm >/dev/null ||
  die "Node.js 20 or newer (with npm) is needed: install it from your distribution (Debian 13, Fedora 39+) or from nodejs.org, then run ./install.sh again"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js $(node --version) is too old: nook needs 20 or newer"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi
say "npm run build"
npm run build

# ------------------------------------------------------------------ on PATH ---

if [ "$(id -u)" = 0 ]; then bindir=/usr/local/bin; else bindir="$HOME/.local/bin"; fi
mkdir -p "$bindir"
nook="$bindir/nook"
marker="# nook wrapper written by install.sh"
if [ -e "$nook" ] && ! grep -qF "$marker" "$nook" 2>/dev/null; then
  die "$nook exists and is not nook's wrapper; remove it and run ./install.sh again"
fi
cat > "$nook.tmp.$$" <<EOF
#!/bin/sh
$marker from $NOOK_HOME
exec "$(command -v node)" "$NOOK_HOME/dist/src/cli/main.cjs" "\$@"
EOF
chmod 0755 "$nook.tmp.$$"
mv -f "$nook.tmp.$$" "$nook"
say "nook is $nook"
# nook-runtime, the OCI runtime command line (podman --runtime, Slurm's oci.conf): docs/oci-runtime.md
runtime="$bindir/nook-runtime"
if [ -e "$runtime" ] && ! grep -qF "$marker" "$runtime" 2>/dev/null; then
  die "$runtime exists and is not nook's wrapper; remove it and run ./install.sh again"
fi
printf '#!/bin/sh\n%s from %s\nexec "%s" "%s" "$@"\n' "$marker" "$NOOK_HOME" "$(command -v node)" "$NOOK_HOME/dist/src/cli/runtime-main.cjs" > "$runtime.tmp.$$"
chmod 0755 "$runtime.tmp.$$"
mv -f "$runtime.tmp.$$" "$runtime"
say "nook-runtime is $runtime"
case ":$PATH:" in
  *":$bindir:"*) ;;
  *) warn "$bindir is not on your PATH: add it (e.g. echo 'export PATH=\"$bindir:\$PATH\"' >> ~/.profile) or call $nook" ;;
esac

# --------------------------------------------------------- subordinate ids ---

user=$(id -un)
if [ "$(id -u)" = 0 ]; then
  say "rootless users need subordinate ids (65536 each) in /etc/subuid and /etc/subgid. For a user without, e.g.:"
  say "    usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER"
  say "  (pick a range no other line of /etc/subuid or /etc/subgid overlaps); nook doctor checks it."
elif ! grep -qE "^($user|$(id -u)):" /etc/subuid 2>/dev/null; then
  warn "$user has no subordinate ids: containers get one uid (yours) only. An administrator can add them:"
  warn "    sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $user"
fi

# ------------------------------------------------------------ default image ---

# localhost/busybox:latest from the host's static busybox: one symlink per
# applet, root and nobody, /tmp 1777. Fixed modes, owners and mtimes make the
# same busybox give the same layer on every run, so a second run sees the
# image is up to date; a new busybox replaces it.
busybox=$(command -v busybox)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rootfs="$tmp/rootfs"
(
  umask 022
  mkdir -p "$rootfs"/{bin,dev,etc,home,proc,root,sys,tmp,usr/bin,var}
  chmod 1777 "$rootfs/tmp"
  chmod 0700 "$rootfs/root"
  cp "$busybox" "$rootfs/bin/busybox"
  chmod 0755 "$rootfs/bin/busybox"
  for applet in $("$busybox" --list); do
    case "$applet" in busybox|*/*) continue ;; esac
    ln -sf busybox "$rootfs/bin/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > "$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$rootfs/etc/group"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$tmp/rootfs.tar" .
)
layer="sha256:$(sha256sum "$tmp/rootfs.tar" | cut -d' ' -f1)"
current=$("$nook" image inspect localhost/busybox:latest 2>/dev/null || true)
if grep -qF "\"$layer\"" <<<"$current"; then
  say "localhost/busybox:latest is up to date"
else
  say "importing localhost/busybox:latest from $busybox"
  "$nook" import --quiet --change 'CMD ["sh"]' "$tmp/rootfs.tar" localhost/busybox:latest
  # The image it replaces has no name left: remove it (unless a container uses it).
  old=$(sed -n 's/^ *"Id": "\([0-9a-f]*\)".*/\1/p' <<<"$current" | head -n 1)
  [ -z "$old" ] || "$nook" rmi "$old" >/dev/null 2>&1 || true
fi

# ------------------------------------------------------------------- doctor ---

say "nook doctor"
"$nook" doctor
