#!/usr/bin/env bash
# nook's test harness: what `npm test` runs after `npm run build`.
#
#   bash test/harness/run.sh [TEST_FILES_OR_GLOBS...] [AVA_FLAGS...]
#
# Builds the shared image fixtures, starts a TLS + auth registry holding them,
# runs ava, stops the registry whatever happens. Exit status: ava's.
#
# Started as root (CI): prepares the machine, then runs the suite UNPRIVILEGED:
# everything but test/nosubid as user nooktest (65536 subordinate ids), then
# test/nosubid as user nooktest2 (no subordinate ids), each with a clean
# environment, in a cgroup of its own so that whatever the tests leave running
# is killed at the end. The suite never runs as root.
# Started as a normal user: runs the suite as that user (test/nosubid only if
# the user has no subordinate ids).
#
# Without arguments every dist/test/**/*.test.js whose source test/**/*.test.ts
# still exists is run (tsc never deletes stale output). With arguments only
# those files (paths containing "nosubid" go to the nosubid user), e.g.
#   npm test -- dist/test/unit/harness.test.js --match '*registry*'
#
# Knobs: NOOK_TEST_USER, NOOK_TEST_NOSUBID_USER (root only; defaults nooktest,
# nooktest2), NOOK_TEST_TIMEOUT (limit for each ava run, default 30m),
# NOOK_TEST_SYSTEMD=0 (root on a systemd host: do not start the test users'
# systemd user managers), NOOK_TEST_KEEP=1 (keep the registry's directory and
# the ava logs).
set -euo pipefail

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$HARNESS_DIR/../.." && pwd)
# shellcheck source=test/harness/test-users.sh
source "$HARNESS_DIR/test-users.sh"
# shellcheck source=test/fixtures/registry.sh
source "$CHECKOUT/test/fixtures/registry.sh"

MAIN_USER=${NOOK_TEST_USER:-nooktest}
NOSUBID_USER=${NOOK_TEST_NOSUBID_USER:-nooktest2}
TIMEOUT=${NOOK_TEST_TIMEOUT:-30m}
NODE=$(command -v node) || { echo "harness: node is not on PATH" >&2; exit 2; }
AS_ROOT=0
[ "$(id -u)" = 0 ] && AS_ROOT=1

say() { echo "harness: $*"; }
die() { echo "harness: $*" >&2; exit 2; }

# ---------------------------------------------------------------- cleanup ---

WORK=""
SUITE_COPY=""
TRACK_CGROUP=""
CGROUP_V2=0
LINGER_ENABLED=()

# Kills every process left in the run's cgroups (detached containers,
# slirp4netns, fuse-overlayfs... of failed tests) and removes the cgroups.
kill_tracked_processes() {
  [ -n "$TRACK_CGROUP" ] && [ -d "$TRACK_CGROUP" ] || return 0
  local left
  left=$(find "$TRACK_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l)
  if [ "$left" -gt 0 ]; then
    say "killing $left process(es) the tests left running"
    if [ -f "$TRACK_CGROUP/cgroup.kill" ]; then
      echo 1 > "$TRACK_CGROUP/cgroup.kill"
    else
      find "$TRACK_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    fi
    local i
    for i in $(seq 50); do
      [ "$(find "$TRACK_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l)" -eq 0 ] && break
      sleep 0.1
    done
  fi
  find "$TRACK_CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null || say "warning: could not remove cgroup $TRACK_CGROUP"
  TRACK_CGROUP=""
}

stop_user_managers() {
  local user
  for user in "${LINGER_ENABLED[@]}"; do
    loginctl disable-linger "$user" || true
    systemctl stop "user@$(id -u "$user").service" || true
  done
  LINGER_ENABLED=()
}

cleanup() {
  local rc=$?
  set +e
  stop_test_registry
  kill_tracked_processes
  stop_user_managers
  [ -n "$SUITE_COPY" ] && rm -rf "$SUITE_COPY"
  if [ -n "$WORK" ]; then
    if [ "${NOOK_TEST_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -------------------------------------------------------- which tests run ---

MAIN_FILES=()
NOSUBID_FILES=()
AVA_FLAGS=()
explicit=0
while [ $# -gt 0 ]; do
  case "$1" in
    -m|--match|-T|--timeout|-c|--concurrency|--node-arguments|--config)
      AVA_FLAGS+=("$1" "${2:?$1 needs a value}"); shift ;;
    -*) AVA_FLAGS+=("$1") ;;
    *nosubid*) NOSUBID_FILES+=("$1"); explicit=1 ;;
    *) MAIN_FILES+=("$1"); explicit=1 ;;
  esac
  shift
done

# Prints the compiled test files of one suite (main or nosubid), relative to
# the checkout, leaving out those whose TypeScript source is gone.
list_test_files() {
  local suite=$1 file source
  [ -d "$CHECKOUT/dist/test" ] || return 0
  (cd "$CHECKOUT" && find dist/test -type f -name '*.test.js' | LC_ALL=C sort) | while read -r file; do
    source="test/${file#dist/test/}"
    source="${source%.js}.ts"
    if [ ! -f "$CHECKOUT/$source" ]; then
      [ "$suite" = main ] && echo "harness: skipping stale $file ($source is gone)" >&2
      continue
    fi
    case "$file" in
      dist/test/nosubid/*) [ "$suite" = nosubid ] && echo "$file" ;;
      *) [ "$suite" = main ] && echo "$file" ;;
    esac
  done
}

if [ "$explicit" = 0 ]; then
  mapfile -t MAIN_FILES < <(list_test_files main)
  mapfile -t NOSUBID_FILES < <(list_test_files nosubid)
  [ "${#MAIN_FILES[@]}" -gt 0 ] || die "no compiled tests under dist/test: run npm run build first (npm test does)"
fi

[ -f "$CHECKOUT/dist/test/fixtures/build-images.js" ] || die "dist/test/fixtures/build-images.js is missing: run npm run build first (npm test does)"
[ -f "$CHECKOUT/node_modules/ava/entrypoints/cli.mjs" ] || die "node_modules has no ava: run npm ci first"

# ------------------------------------------------------ machine and users ---

user_has_subids() {
  local user=$1 uid
  uid=$(id -u "$user")
  grep -qE "^($user|$uid):" /etc/subuid 2>/dev/null
}

run_as() {
  local user=$1
  shift
  setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups --inh-caps=-all -- "$@"
}

user_can_read_checkout() {
  run_as "$1" test -r "$SUITE/package.json" -a -x "$SUITE/dist/test" -a -x "$SUITE/node_modules/ava" 2>/dev/null
}

# Files the test users must read: add o+r (and o+x to directories) where missing.
make_readable() {
  local dir=$1
  find "$dir" -path "$dir/.git" -prune -o \( \( -type d ! -perm -o=rx \) -o \( -type f ! -perm -o=r \) \) -print0 |
    xargs -0r chmod a+rX
}

# A cgroup for the run, so that what the tests leave running can be found and
# killed. On a pure cgroup v2 host each user's part (nook-test.PID/main,
# .../nosubid) is delegated to that user, as systemd delegates a user's
# service, with the cpu, cpuset, io, memory and pids controllers available,
# and exported as NOOK_TEST_CGROUP; ava itself runs in its child "harness".
# On a hybrid host the v2 hierarchy without controllers only tracks processes.
setup_tracking_cgroup() {
  local base
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    base=/sys/fs/cgroup
    CGROUP_V2=1
  elif [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
    base=/sys/fs/cgroup/unified   # hybrid host: v2 hierarchy without controllers, still tracks processes
  else
    say "warning: no cgroup v2 hierarchy: processes the tests leave running will not be killed"
    return 0
  fi
  if mkdir "$base/nook-test.$$" 2>/dev/null; then
    TRACK_CGROUP="$base/nook-test.$$"
  else
    say "warning: cannot create a cgroup under $base: processes the tests leave running will not be killed"
    return 0
  fi
  if [ "$CGROUP_V2" = 1 ]; then
    # Hand the usual delegated controllers down, so the users' cgroups can set limits.
    local controller
    for controller in cpu cpuset io memory pids; do
      grep -qw "$controller" "$TRACK_CGROUP/cgroup.controllers" &&
        { echo "+$controller" > "$TRACK_CGROUP/cgroup.subtree_control" 2>/dev/null || say "warning: cannot enable the $controller controller for the tests"; }
    done
  fi
  return 0
}

# Prints the leaf cgroup the user's ava joins (NAME/harness), delegating NAME to the user.
user_cgroup() {
  local name=$1 user=$2 dir
  [ -n "$TRACK_CGROUP" ] || return 0
  dir="$TRACK_CGROUP/$name"
  mkdir -p "$dir/harness"
  if [ "$CGROUP_V2" = 1 ]; then
    # Delegated as systemd delegates a user's service: the directory and the
    # files that move processes and enable controllers belong to the user.
    chown "$user:" "$dir" "$dir/harness"
    local f
    for f in cgroup.procs cgroup.threads cgroup.subtree_control; do
      [ ! -e "$dir/$f" ] || chown "$user:" "$dir/$f"
      [ ! -e "$dir/harness/$f" ] || chown "$user:" "$dir/harness/$f"
    done
  fi
  echo "$dir/harness"
}

# On a systemd host, a user manager for the test user (linger), as a login
# would start, so that the systemd cgroup manager can be tested for real.
start_user_manager() {
  local user=$1 uid i
  [ "${NOOK_TEST_SYSTEMD:-1}" != 0 ] && [ -d /run/systemd/system ] && command -v loginctl >/dev/null || return 0
  uid=$(id -u "$user")
  if [ ! -e "/var/lib/systemd/linger/$user" ]; then
    loginctl enable-linger "$user" || { say "warning: loginctl enable-linger $user failed"; return 0; }
    LINGER_ENABLED+=("$user")
  fi
  for i in $(seq 100); do
    [ -S "/run/user/$uid/bus" ] && return 0
    sleep 0.1
  done
  say "warning: no systemd user manager for $user (/run/user/$uid/bus missing)"
}

# The clean environment a test user's ava gets.
user_env() {
  local user=$1 uid home name
  uid=$(id -u "$user")
  home=$(getent passwd "$user" | cut -d: -f6)
  USER_ENV=(
    "HOME=$home" "USER=$user" "LOGNAME=$user" "SHELL=/bin/bash" "LANG=C.UTF-8"
    "PATH=$(dirname "$NODE"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  )
  # Only a runtime directory that is the user's own: nook must cope without one.
  if [ -d "/run/user/$uid" ] && [ "$(stat -c %u "/run/user/$uid")" = "$uid" ]; then
    USER_ENV+=("XDG_RUNTIME_DIR=/run/user/$uid")
    [ -S "/run/user/$uid/bus" ] && USER_ENV+=("DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus")
  fi
  for name in $(compgen -e); do
    case "$name" in
      CI|CI_*|CONTINUOUS_INTEGRATION|BUILD_NUMBER|RUN_ID|GITHUB_*|GITLAB_*|BUILDKITE*|RUNNER_*|JENKINS_URL|TF_BUILD|TEAMCITY_VERSION|NOOK_*|TERM|NO_COLOR|FORCE_COLOR|TZ)
        USER_ENV+=("$name=${!name}") ;;
    esac
  done
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nook-harness.XXXXXX")
chmod 0755 "$WORK"
SUITE=$CHECKOUT

if [ "$AS_ROOT" = 1 ]; then
  command -v setpriv >/dev/null || die "setpriv is missing (Debian: apt-get install util-linux)"
  prepare_test_users "$MAIN_USER" "$NOSUBID_USER"
  prepare_devices
fi

# ---------------------------------------------------------------- fixtures ---

FIXTURES=$("$NODE" "$CHECKOUT/dist/test/fixtures/build-images.js")

if [ "$AS_ROOT" = 1 ]; then
  make_readable "$CHECKOUT/dist"
  make_readable "$CHECKOUT/node_modules"
  make_readable "$CHECKOUT/test/fixtures/cache"
  [ -d "$CHECKOUT/helpers" ] && make_readable "$CHECKOUT/helpers"
  chmod a+r "$CHECKOUT/package.json"
  if ! user_can_read_checkout "$MAIN_USER" || ! user_can_read_checkout "$NOSUBID_USER"; then
    # e.g. a checkout under /root: run a readable copy instead.
    SUITE_COPY=$(mktemp -d /var/tmp/nook-suite.XXXXXX)
    say "the test users cannot reach $CHECKOUT: running a copy in $SUITE_COPY"
    tar -C "$CHECKOUT" --exclude=./.git -cf - . | tar -C "$SUITE_COPY" -xf -
    chmod 0755 "$SUITE_COPY"
    make_readable "$SUITE_COPY"
    SUITE=$SUITE_COPY
    FIXTURES="$SUITE/${FIXTURES#"$CHECKOUT"/}"
    user_can_read_checkout "$MAIN_USER" || die "$MAIN_USER cannot read $SUITE either"
  fi
fi

export NOOK_TEST_FIXTURES="$FIXTURES"
export NOOK_TEST_ROOTFS_TAR="$FIXTURES/busybox-rootfs.tar"
export NOOK_TEST_BUSYBOX_OCI="$FIXTURES/busybox-oci"
export NOOK_TEST_BUSYBOX_ARCHIVE="$FIXTURES/busybox-docker-archive.tar"
export NOOK_TEST_LAYERED_OCI="$FIXTURES/layered-oci"
export NOOK_TEST_MULTIARCH_OCI="$FIXTURES/multiarch-oci"

start_test_registry "$WORK/registry" "$FIXTURES"

# -------------------------------------------------------------------- ava ---

SUMMARY=()
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0

count_lines() { LC_ALL=C grep -cE "$1" "$2" || true; }

# run_suite LABEL USER FILES...: runs ava, records its counts, returns its status.
run_suite() {
  local label=$1 user=$2
  shift 2
  local log="$WORK/ava-$label.log" rc=0 cmd
  cmd=(timeout --kill-after=30s "$TIMEOUT")
  if [ "$AS_ROOT" = 1 ]; then
    local leaf
    leaf=$(user_cgroup "$label" "$user")
    user_env "$user"
    if [ "$CGROUP_V2" = 1 ] && [ -n "$leaf" ]; then USER_ENV+=("NOOK_TEST_CGROUP=$(dirname "$leaf")"); fi
    if [ -n "$leaf" ]; then
      cmd=(bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' harness-cgroup "$leaf" "${cmd[@]}")
    fi
    cmd+=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups --inh-caps=-all -- env -i "${USER_ENV[@]}")
  fi
  cmd+=("$NODE" "$SUITE/node_modules/ava/entrypoints/cli.mjs" "${AVA_FLAGS[@]}" "$@")

  say "running ${#@} test file(s) as $user ($label)"
  set +e
  (cd "$SUITE" && "${cmd[@]}") < /dev/null 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 124 ] && say "ava ($label) was stopped after $TIMEOUT"

  local passed failed skipped
  passed=$(count_lines '^ +✔ ' "$log")
  failed=$(count_lines '^ +✘ ' "$log")
  skipped=$(count_lines '^ +- \[(skip|todo)\] ' "$log")
  if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
  SUMMARY+=("$label suite as $user: ava exited $rc ($passed passed, $failed failed, $skipped skipped)")
  return "$rc"
}

if [ "$AS_ROOT" = 1 ]; then
  setup_tracking_cgroup
  start_user_manager "$MAIN_USER"
  start_user_manager "$NOSUBID_USER"
  RUN_USER=$MAIN_USER
else
  RUN_USER=$(id -un)
fi

MAIN_RC=0
NOSUBID_RC=0
if [ "${#MAIN_FILES[@]}" -gt 0 ]; then
  run_suite main "$RUN_USER" "${MAIN_FILES[@]}" || MAIN_RC=$?
fi
if [ "${#NOSUBID_FILES[@]}" -eq 0 ]; then
  [ "$explicit" = 0 ] && say "no tests under dist/test/nosubid"
elif [ "$AS_ROOT" = 1 ]; then
  user_has_subids "$NOSUBID_USER" && die "$NOSUBID_USER has subordinate ids; the nosubid suite needs a user without"
  run_suite nosubid "$NOSUBID_USER" "${NOSUBID_FILES[@]}" || NOSUBID_RC=$?
elif user_has_subids "$RUN_USER"; then
  say "note: skipping dist/test/nosubid: $RUN_USER has subordinate ids (run npm test as root to run them as $NOSUBID_USER)"
else
  run_suite nosubid "$RUN_USER" "${NOSUBID_FILES[@]}" || NOSUBID_RC=$?
fi

kill_tracked_processes
echo
for line in "${SUMMARY[@]}"; do say "$line"; done
echo "tests: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
if [ "$MAIN_RC" != 0 ]; then exit "$MAIN_RC"; fi
exit "$NOSUBID_RC"
