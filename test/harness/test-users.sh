# Sourced by run.sh when it runs as root: prepares the machine so that the
# suite can run unprivileged, the way a user of nook would.
#
#   prepare_test_users MAIN_USER NOSUBID_USER
#       MAIN_USER gets a home, a shell and 65536 subordinate uids and gids that
#       overlap nobody's; NOSUBID_USER gets none (nook must still work for it).
#   prepare_devices
#       /dev/fuse and /dev/net/tun usable by users, user namespaces allowed.
#
# Everything here is idempotent: run it again and nothing changes.

SUBID_COUNT=65536

# The first id after every range in /etc/subuid and /etc/subgid, rounded up to
# a multiple of 65536 and at least 100000 (the usual start).
first_free_subid() {
  local max=100000 line start count
  for f in /etc/subuid /etc/subgid; do
    [ -f "$f" ] || continue
    while IFS=: read -r _ start count; do
      [[ "$start" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ ]] || continue
      (( start + count > max )) && max=$(( start + count ))
    done < "$f"
  done
  echo $(( (max + SUBID_COUNT - 1) / SUBID_COUNT * SUBID_COUNT ))
}

# Prints "START COUNT" of the user's entry in FILE (by name or uid), or nothing.
subid_entry() {
  local file=$1 user=$2 uid
  uid=$(id -u "$user")
  [ -f "$file" ] || return 0
  awk -F: -v u="$user" -v n="$uid" '$1 == u || $1 == n { print $2, $3; exit }' "$file"
}

ensure_user() {
  local user=$1
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --comment "nook test suite" "$user"
    echo "harness: created user $user"
  fi
  local home
  home=$(getent passwd "$user" | cut -d: -f6)
  if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$user:" "$home"
    chmod 0755 "$home"
  fi
}

prepare_test_users() {
  local main=$1 nosubid=$2
  ensure_user "$main"
  ensure_user "$nosubid"
  touch /etc/subuid /etc/subgid

  # The second user must have no subordinate ids at all (useradd may have given it some).
  local uid2
  uid2=$(id -u "$nosubid")
  for f in /etc/subuid /etc/subgid; do
    if grep -qE "^($nosubid|$uid2):" "$f"; then
      sed -i -E "/^($nosubid|$uid2):/d" "$f"
      echo "harness: removed $nosubid's entries from $f"
    fi
  done

  local f entry start
  for f in /etc/subuid /etc/subgid; do
    entry=$(subid_entry "$f" "$main")
    if [ -z "$entry" ]; then
      start=$(first_free_subid)
      echo "$main:$start:$SUBID_COUNT" >> "$f"
      echo "harness: gave $main the ids $start-$(( start + SUBID_COUNT - 1 )) in $f"
    elif (( ${entry#* } < SUBID_COUNT )); then
      echo "harness: warning: $main has only ${entry#* } ids in $f (tests expect $SUBID_COUNT)" >&2
    fi
  done
}

# chmod a device to 0666 when it is 0600 (minimal VMs), creating it if the module can be loaded.
open_device() {
  local dev=$1 module=$2 major=$3 minor=$4
  if [ ! -e "$dev" ]; then
    modprobe "$module" 2>/dev/null || true
    if [ ! -e "$dev" ]; then
      mkdir -p "$(dirname "$dev")"
      mknod -m 0666 "$dev" c "$major" "$minor" 2>/dev/null || true
    fi
  fi
  if [ ! -e "$dev" ]; then
    echo "harness: warning: $dev is missing; tests that need it will fail" >&2
    return 0
  fi
  if [ "$(stat -c %a "$dev")" != 666 ]; then
    chmod 0666 "$dev"
    echo "harness: made $dev usable by users (0666)"
  fi
}

prepare_devices() {
  open_device /dev/fuse fuse 10 229
  open_device /dev/net/tun tun 10 200
  # Debian's switch for unprivileged user namespaces (absent on newer kernels).
  if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
    echo 1 > /proc/sys/kernel/unprivileged_userns_clone
    echo "harness: enabled kernel.unprivileged_userns_clone"
  fi
  if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
    echo 15000 > /proc/sys/user/max_user_namespaces
    echo "harness: raised user.max_user_namespaces to 15000"
  fi
}
