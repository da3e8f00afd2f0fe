/*
 * nook-exec: nook's single-threaded executor.
 *
 * A Node.js process always runs several threads, and the kernel refuses
 * unshare(CLONE_NEWUSER) and setns() into a user namespace to a multi-threaded
 * process. So TypeScript decides everything (src/runtime/plan.ts, the
 * ExecutorPlan) and this small program carries the plan out, step by step,
 * reporting on a status pipe. It makes no decision of its own.
 *
 * Interface (see src/runtime/plan-encoding.ts for the writer side):
 *   fd 4  the plan: "<length>\n", then <length> bytes of NUL-terminated tokens
 *         (strings, decimal numbers, counts before every list), starting with
 *         the magic token "nook-plan/1" and ending with "end". No JSON parser
 *         in C. With plan.hold, fd 4 then stays open as the control fd: the
 *         container process, ready, waits for one byte on it before execve
 *         (EOF: give up).
 *   fd 3  status: one JSON object per line (ExecutorStatus in plan.ts):
 *         {"type":"step",...} (trace only), {"type":"created",...} (hold only),
 *         {"type":"started",...},
 *         {"type":"error",...}, {"type":"exited",...} (foreground only).
 *   fd 5+ optional lifelines (ExecutorOptions.extraFds): held by the monitor
 *         (and the setup process, its fork) until they exit; no program they
 *         start inherits them.
 *   `nook-exec --decode` reads a plan on stdin and prints it back as JSON
 *   (used by the unit tests of the encoder).
 *
 * Processes:
 *
 *   monitor (this process; never enters a namespace, keeps the host's root)
 *   |   writes the id maps of the setup process (newuidmap/newgidmap, or
 *   |   /proc/PID/uid_map directly), forwards signals to the container,
 *   |   writes logs / pid file / exit file, runs onExit, reports the exit.
 *   `-- setup process (forked first)
 *       |   joins the cgroup, creates/joins the user namespace, then the other
 *       |   namespaces (the pid namespace last, right before the fork, so that
 *       |   mount daemons started by outerOps stay outside it), runs outerOps.
 *       |   Stays alive as the container's parent: reaps it, reports its
 *       |   status to the monitor, stops the mount daemons. With published
 *       |   TCP ports (plan.portForwards) it also relays them: the monitor
 *       |   made the listeners on the host before this process left the
 *       |   host's network namespace; it accepts, connects to the container
 *       |   from inside, and splices both ways (forward_until_exit).
 *       |-- mount daemons (spawn-mount: fuse-overlayfs -f), PR_SET_PDEATHSIG
 *       `-- container process (PID 1 in a new pid namespace)
 *             gets its own copy of the mount namespace when the plan creates
 *             one (so pivot_root moves only the container's view, not the
 *             daemons'), runs innerOps, applies the process settings, execve.
 *
 * The monitor stays outside every namespace because onExit (e.g. `nook
 * container cleanup ID`) must run as the user on the host, with the host's
 * root and mount table, exactly as podman's conmon does.
 *
 * Every process dies with its parent (PR_SET_PDEATHSIG SIGKILL, re-armed after
 * credential changes, which clear it), so a failure or a killed monitor never
 * leaves anything behind.
 *
 * Errors: every failing step reports {"type":"error","step":...,"errno":...}
 * and the process exits with the error's exit code (125, or 126/127 for
 * execve), after killing the children it started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

#define PLAN_MAGIC "nook-plan/1"
#define STATUS_FD 3
#define PLAN_FD 4
#define PLAN_MAX_BYTES (64u << 20)
#define EXIT_INTERNAL 125
#define EXIT_CANNOT_INVOKE 126
#define EXIT_NOT_FOUND 127
/* A status line is written with one write(2): below PIPE_BUF it is atomic,
 * so lines of the three processes sharing the fd never interleave. */
#define LINE_MAX_LEN 4000
#define SPAWN_MOUNT_TIMEOUT_MS 10000
#define DAEMON_STOP_TIMEOUT_MS 2000
#define MAX_DAEMONS 16
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* ------------------------------------------------------------------------ */
/* The plan, decoded                                                         */
/* ------------------------------------------------------------------------ */

struct strv {
    size_t n;
    char **v; /* NULL-terminated, for execve */
};

struct idmap_entry {
    unsigned long inside, outside, count;
};

enum ensure { ENSURE_NONE, ENSURE_DIR, ENSURE_FILE };

enum op_kind {
    OP_SET_ROOT,
    OP_MOUNT,
    OP_MKDIR,
    OP_SYMLINK,
    OP_WRITE_FILE,
    OP_SPAWN_MOUNT,
    OP_CHDIR,
    OP_PIVOT_ROOT,
    OP_UMOUNT,
    OP_SETHOSTNAME,
    OP_MASK,
    OP_READONLY,
    OP_SYNC,
    OP_LOOPBACK_UP,
};

static const char *const op_names[] = {
    "set-root", "mount", "mkdir", "symlink", "write-file", "spawn-mount",
    "chdir", "pivot-root", "umount", "sethostname", "mask", "readonly", "sync",
    "loopback-up",
};

struct op {
    enum op_kind kind;
    const char *path;    /* set-root, mkdir, symlink (the link), write-file, chdir, pivot-root, mask, readonly; sync: its name */
    const char *source;  /* mount */
    const char *target;  /* mount, symlink (what it points to), spawn-mount, umount */
    const char *fstype;  /* mount */
    const char *data;    /* mount data; write-file content; sethostname name */
    unsigned long flags; /* mount, umount */
    unsigned mode;       /* mkdir */
    bool in_root, keep_locked, optional;
    enum ensure ensure;
    struct strv args; /* spawn-mount */
};

struct ns_entry {
    const char *name; /* "mnt", "pid", ... as in plan.ts */
    int flag;         /* CLONE_NEW* */
    const char *path; /* NULL: create a new one */
    int fd;           /* opened before any setns */
};

struct rlimit_entry {
    int resource;
    unsigned long long soft, hard;
};

struct caps {
    unsigned long long bounding, effective, permitted, inheritable, ambient;
};

/* A published TCP port the executor forwards itself (plan.ts, PortForward). */
struct port_forward {
    const char *host_ip, *container_ip;
    unsigned host_port, container_port;
    struct sockaddr_in host, container;
    int listen_fd; /* bound by the monitor on the host; -1 before, and once closed */
};

enum user_mode { USER_NONE, USER_JOIN, USER_NEW };
enum monitor_mode { MONITOR_FOREGROUND, MONITOR_DETACHED, MONITOR_HANDOFF };

struct plan {
    bool trace;
    bool hold;
    const char *start_fifo; /* with hold: wait for a byte in this FIFO instead of on the control fd */
    enum user_mode user_mode;
    const char *user_path;
    size_t n_uid_map, n_gid_map;
    struct idmap_entry *uid_map, *gid_map;
    const char *uid_helper, *gid_helper; /* NULL: write the map directly */
    bool setgroups_deny;
    const char *join_cgroup; /* cgroup.procs to write "0" into, or NULL */
    bool hold_setup;         /* holdBeforeNamespaces: report the setup pid, wait for a byte on the control fd */
    bool watch_oom;          /* report whether the OOM killer struck in the setup process's cgroup */
    size_t n_forwards;
    struct port_forward *forwards;
    size_t n_ns;
    struct ns_entry *ns;
    size_t n_outer, n_inner;
    struct op *outer, *inner;
    struct {
        struct strv args, env;
        const char *cwd;
        unsigned long uid, gid;
        size_t n_gids;
        gid_t *gids;
        bool has_caps;
        struct caps caps;
        bool no_new_privs;
        unsigned char *seccomp; /* raw sock_filter array */
        size_t seccomp_len;     /* bytes */
        size_t n_rlimits;
        struct rlimit_entry *rlimits;
        bool has_oom;
        long oom_score_adj;
        bool search_path;
        bool terminal;
        unsigned console_rows, console_cols; /* 0: leave the size alone */
        long umask; /* -1: leave as inherited */
    } proc;
    struct {
        enum monitor_mode mode;
        const char *log_path, *exit_file, *pid_file; /* NULL when absent */
        struct strv on_exit;
        bool die_with_parent;
        const char *console_socket; /* with a terminal: pass its controlling side there (OCI --console-socket) */
        bool terminal_stdin;        /* foreground with a terminal: copy our stdin to it */
    } mon;
};

/* ------------------------------------------------------------------------ */
/* Process-wide state. Each process (monitor, setup, container) has its own   */
/* copy after fork; these are the few things every error path needs.         */
/* ------------------------------------------------------------------------ */

enum role { ROLE_MONITOR, ROLE_SETUP, ROLE_CONTAINER };

static struct {
    enum role role;
    int status_fd;     /* -1 once closed */
    bool trace;
    int exec_fd;       /* container: write end of the exec-sync pipe ('E' on failure) */
    pid_t kill_on_fail[MAX_DAEMONS + 2];
    size_t n_kill;
} g = { ROLE_MONITOR, -1, false, -1, {0}, 0 };

/* The monitor's stdin settings before it made the user's terminal raw (-it):
 * every way out of the monitor puts them back. */
static struct {
    bool saved;
    struct termios attrs;
} user_terminal;

static void restore_user_terminal(void) {
    if (!user_terminal.saved) return;
    tcsetattr(0, TCSADRAIN, &user_terminal.attrs);
    user_terminal.saved = false;
}

/* ------------------------------------------------------------------------ */
/* Status lines (JSON)                                                       */
/* ------------------------------------------------------------------------ */

struct line {
    char buf[LINE_MAX_LEN + 64];
    size_t len;
};

static void ln_raw(struct line *l, const char *s) {
    size_t n = strlen(s);
    if (l->len + n > LINE_MAX_LEN) n = LINE_MAX_LEN > l->len ? LINE_MAX_LEN - l->len : 0;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* A JSON string; long strings are cut (keeping room for what follows). */
static void ln_str(struct line *l, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t limit = LINE_MAX_LEN - 200;
    l->buf[l->len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (l->len >= limit) {
            memcpy(l->buf + l->len, "...", 3);
            l->len += 3;
            break;
        }
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            l->buf[l->len++] = '\\';
            l->buf[l->len++] = (char)c;
        } else if (c == '\n') {
            memcpy(l->buf + l->len, "\\n", 2);
            l->len += 2;
        } else if (c == '\t') {
            memcpy(l->buf + l->len, "\\t", 2);
            l->len += 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(l->buf + l->len, "\\u00", 4);
            l->buf[l->len + 4] = hex[c >> 4];
            l->buf[l->len + 5] = hex[c & 15];
            l->len += 6;
        } else {
            l->buf[l->len++] = (char)c;
        }
    }
    l->buf[l->len++] = '"';
}

static void ln_int(struct line *l, long long v) {
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    ln_raw(l, num);
}

static void write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        len -= (size_t)n;
    }
}

static void status_send(struct line *l) {
    if (g.status_fd < 0) return;
    l->buf[l->len++] = '\n';
    write_all(g.status_fd, l->buf, l->len);
}

/* Trace: one line per kernel-level step, only when the plan asks for it. */
__attribute__((format(printf, 1, 2))) static void step(const char *fmt, ...) {
    if (!g.trace) return;
    char text[LINE_MAX_LEN - 300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct line l = { .len = 0 };
    ln_raw(&l, "{\"type\":\"step\",\"text\":");
    ln_str(&l, text);
    ln_raw(&l, "}");
    status_send(&l);
}

/* strerror in the style of the rest of nook: "operation not permitted". */
static void errno_message(int err, char *out, size_t size) {
    snprintf(out, size, "%s", strerror(err));
    if (out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z')) out[0] = (char)(out[0] - 'A' + 'a');
}

static void kill_children(void) {
    for (size_t i = 0; i < g.n_kill; i++) {
        if (g.kill_on_fail[i] > 0) kill(g.kill_on_fail[i], SIGKILL);
    }
    for (size_t i = 0; i < g.n_kill; i++) {
        if (g.kill_on_fail[i] > 0) {
            while (waitpid(g.kill_on_fail[i], NULL, 0) < 0 && errno == EINTR) {}
        }
    }
    g.n_kill = 0;
}

static void remember_child(pid_t pid) {
    if (g.n_kill < sizeof g.kill_on_fail / sizeof g.kill_on_fail[0]) g.kill_on_fail[g.n_kill++] = pid;
}

/*
 * Reports an error and ends this process: kills the children it started
 * first, so that nothing is left behind. `err` 0 means no errno applies.
 */
static _Noreturn void fail_with(int exit_code, int err, const char *message, const char *step_text) {
    struct line l = { .len = 0 };
    char msg[LINE_MAX_LEN / 2];
    if (message) snprintf(msg, sizeof msg, "%s", message);
    else errno_message(err, msg, sizeof msg);
    ln_raw(&l, "{\"type\":\"error\",\"step\":");
    ln_str(&l, step_text);
    if (err) {
        const char *name = strerrorname_np(err);
        ln_raw(&l, ",\"errno\":");
        ln_str(&l, name ? name : "EUNKNOWN");
    }
    ln_raw(&l, ",\"message\":");
    ln_str(&l, msg);
    ln_raw(&l, ",\"exitCode\":");
    ln_int(&l, exit_code);
    ln_raw(&l, "}");
    status_send(&l);
    if (g.role == ROLE_CONTAINER && g.exec_fd >= 0) write_all(g.exec_fd, "E", 1);
    if (g.role == ROLE_MONITOR) restore_user_terminal();
    kill_children();
    _exit(exit_code);
}

/* A failed system call: the step names what was being done, errno says why. */
__attribute__((format(printf, 2, 3))) static _Noreturn void fail(int err, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fail_with(EXIT_INTERNAL, err, NULL, text);
}

/* ------------------------------------------------------------------------ */
/* Plan decoding                                                             */
/* ------------------------------------------------------------------------ */

struct reader {
    char *p, *end;
    const char *error; /* first problem, NULL while all is well */
};

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) fail(ENOMEM, "decode plan");
    return p;
}

static char *rd_str(struct reader *r) {
    if (r->error) return "";
    char *nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
    if (!nul) {
        r->error = "truncated plan";
        return "";
    }
    char *s = r->p;
    r->p = nul + 1;
    return s;
}

/* "" encodes null for optional strings. */
static const char *rd_opt_str(struct reader *r) {
    const char *s = rd_str(r);
    return *s ? s : NULL;
}

static unsigned long long rd_u64(struct reader *r) {
    const char *s = rd_str(r);
    if (r->error) return 0;
    if (!*s || strspn(s, "0123456789") != strlen(s)) {
        r->error = "expected an unsigned number";
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno) r->error = "number out of range";
    return v;
}

static long long rd_i64(struct reader *r) {
    const char *s = rd_str(r);
    if (r->error) return 0;
    const char *digits = *s == '-' ? s + 1 : s;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits)) {
        r->error = "expected a number";
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno) r->error = "number out of range";
    return v;
}

static unsigned long rd_u32(struct reader *r) {
    unsigned long long v = rd_u64(r);
    if (v > 0xffffffffull && !r->error) r->error = "number out of range";
    return (unsigned long)v;
}

static bool rd_bool(struct reader *r) {
    const char *s = rd_str(r);
    if (!r->error && strcmp(s, "0") != 0 && strcmp(s, "1") != 0) r->error = "expected 0 or 1";
    return s[0] == '1';
}

/* A count of following tokens: never more than the bytes left, so a corrupt
 * count cannot make us allocate much. */
static size_t rd_count(struct reader *r) {
    unsigned long long n = rd_u64(r);
    if (!r->error && n > (unsigned long long)(r->end - r->p)) r->error = "count larger than the plan";
    return r->error ? 0 : (size_t)n;
}

static void rd_expect(struct reader *r, const char *want) {
    const char *s = rd_str(r);
    if (!r->error && strcmp(s, want) != 0) r->error = "unexpected token (plan format mismatch)";
}

static struct strv rd_strv(struct reader *r) {
    struct strv sv;
    sv.n = rd_count(r);
    sv.v = xcalloc(sv.n + 1, sizeof(char *));
    for (size_t i = 0; i < sv.n; i++) sv.v[i] = rd_str(r);
    return sv;
}

static enum ensure rd_ensure(struct reader *r) {
    const char *s = rd_str(r);
    if (!strcmp(s, "dir")) return ENSURE_DIR;
    if (!strcmp(s, "file")) return ENSURE_FILE;
    if (strcmp(s, "none") != 0 && !r->error) r->error = "bad ensure value";
    return ENSURE_NONE;
}

static struct idmap_entry *rd_idmap(struct reader *r, size_t *n) {
    *n = rd_count(r);
    struct idmap_entry *m = xcalloc(*n, sizeof *m);
    for (size_t i = 0; i < *n; i++) {
        m[i].inside = rd_u32(r);
        m[i].outside = rd_u32(r);
        m[i].count = rd_u32(r);
    }
    return m;
}

static void rd_op(struct reader *r, struct op *op) {
    const char *kind = rd_str(r);
    size_t k;
    for (k = 0; k < sizeof op_names / sizeof op_names[0]; k++) {
        if (!strcmp(kind, op_names[k])) break;
    }
    if (k == sizeof op_names / sizeof op_names[0]) {
        if (!r->error) r->error = "unknown op";
        return;
    }
    op->kind = (enum op_kind)k;
    switch (op->kind) {
    case OP_SET_ROOT:
    case OP_CHDIR:
    case OP_PIVOT_ROOT:
    case OP_MASK:
    case OP_READONLY:
    case OP_SYNC:
        op->path = rd_str(r);
        break;
    case OP_MOUNT:
        op->source = rd_str(r);
        op->target = rd_str(r);
        op->fstype = rd_str(r);
        op->flags = (unsigned long)rd_u64(r);
        op->data = rd_str(r);
        op->in_root = rd_bool(r);
        op->ensure = rd_ensure(r);
        op->keep_locked = rd_bool(r);
        op->optional = rd_bool(r);
        break;
    case OP_MKDIR:
        op->path = rd_str(r);
        op->mode = (unsigned)rd_u32(r) & 07777;
        op->in_root = rd_bool(r);
        break;
    case OP_SYMLINK:
        op->target = rd_str(r);
        op->path = rd_str(r);
        op->in_root = rd_bool(r);
        break;
    case OP_WRITE_FILE:
        op->path = rd_str(r);
        op->data = rd_str(r);
        op->in_root = rd_bool(r);
        break;
    case OP_SPAWN_MOUNT:
        op->args = rd_strv(r);
        op->target = rd_str(r);
        if (!r->error && op->args.n == 0) r->error = "spawn-mount without a command";
        break;
    case OP_UMOUNT:
        op->target = rd_str(r);
        op->flags = (unsigned long)rd_u64(r);
        break;
    case OP_SETHOSTNAME:
        op->data = rd_str(r);
        break;
    case OP_LOOPBACK_UP:
        break;
    }
}

static struct op *rd_ops(struct reader *r, size_t *n) {
    *n = rd_count(r);
    struct op *ops = xcalloc(*n, sizeof *ops);
    for (size_t i = 0; i < *n && !r->error; i++) rd_op(r, &ops[i]);
    return ops;
}

static int ns_flag(const char *name) {
    if (!strcmp(name, "mnt")) return CLONE_NEWNS;
    if (!strcmp(name, "pid")) return CLONE_NEWPID;
    if (!strcmp(name, "uts")) return CLONE_NEWUTS;
    if (!strcmp(name, "ipc")) return CLONE_NEWIPC;
    if (!strcmp(name, "net")) return CLONE_NEWNET;
    if (!strcmp(name, "cgroup")) return CLONE_NEWCGROUP;
    return 0;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static const char *decode_plan(char *buf, size_t len, struct plan *plan) {
    struct reader rd = { buf, buf + len, NULL };
    struct reader *r = &rd;
    memset(plan, 0, sizeof *plan);

    rd_expect(r, PLAN_MAGIC);
    plan->trace = rd_bool(r);

    const char *user = rd_str(r);
    if (!strcmp(user, "none")) {
        plan->user_mode = USER_NONE;
    } else if (!strcmp(user, "join")) {
        plan->user_mode = USER_JOIN;
        plan->user_path = rd_str(r);
    } else if (!strcmp(user, "new")) {
        plan->user_mode = USER_NEW;
        plan->uid_map = rd_idmap(r, &plan->n_uid_map);
        plan->gid_map = rd_idmap(r, &plan->n_gid_map);
        plan->uid_helper = rd_opt_str(r);
        plan->gid_helper = rd_opt_str(r);
        const char *sg = rd_str(r);
        plan->setgroups_deny = !strcmp(sg, "deny");
        if (!r->error && strcmp(sg, "allow") != 0 && !plan->setgroups_deny) r->error = "bad setgroups value";
    } else if (!r->error) {
        r->error = "bad user namespace mode";
    }
    plan->join_cgroup = rd_opt_str(r);
    plan->hold = rd_bool(r);
    plan->hold_setup = rd_bool(r);
    plan->watch_oom = rd_bool(r);
    plan->start_fifo = rd_opt_str(r);

    plan->n_forwards = rd_count(r);
    plan->forwards = xcalloc(plan->n_forwards, sizeof *plan->forwards);
    for (size_t i = 0; i < plan->n_forwards; i++) {
        struct port_forward *f = &plan->forwards[i];
        f->listen_fd = -1;
        f->host_ip = rd_str(r);
        f->host_port = (unsigned)rd_u32(r);
        f->container_ip = rd_str(r);
        f->container_port = (unsigned)rd_u32(r);
        f->host.sin_family = f->container.sin_family = AF_INET;
        f->host.sin_port = htons((uint16_t)f->host_port);
        f->container.sin_port = htons((uint16_t)f->container_port);
        if (r->error) break;
        if (inet_pton(AF_INET, f->host_ip, &f->host.sin_addr) != 1 || inet_pton(AF_INET, f->container_ip, &f->container.sin_addr) != 1)
            r->error = "a port forward's address is not IPv4";
        else if (f->host_port == 0 || f->host_port > 65535 || f->container_port == 0 || f->container_port > 65535)
            r->error = "a port forward's port is outside 1-65535";
    }

    plan->n_ns = rd_count(r);
    plan->ns = xcalloc(plan->n_ns, sizeof *plan->ns);
    for (size_t i = 0; i < plan->n_ns; i++) {
        plan->ns[i].name = rd_str(r);
        plan->ns[i].path = rd_opt_str(r);
        plan->ns[i].flag = ns_flag(plan->ns[i].name);
        plan->ns[i].fd = -1;
        if (!plan->ns[i].flag && !r->error) r->error = "bad namespace type";
    }

    plan->outer = rd_ops(r, &plan->n_outer);
    plan->inner = rd_ops(r, &plan->n_inner);

    plan->proc.args = rd_strv(r);
    if (!r->error && plan->proc.args.n == 0) r->error = "process.args is empty";
    plan->proc.env = rd_strv(r);
    plan->proc.cwd = rd_str(r);
    plan->proc.uid = rd_u32(r);
    plan->proc.gid = rd_u32(r);
    plan->proc.n_gids = rd_count(r);
    plan->proc.gids = xcalloc(plan->proc.n_gids, sizeof(gid_t));
    for (size_t i = 0; i < plan->proc.n_gids; i++) plan->proc.gids[i] = (gid_t)rd_u32(r);
    plan->proc.has_caps = rd_bool(r);
    if (plan->proc.has_caps) {
        plan->proc.caps.bounding = rd_u64(r);
        plan->proc.caps.effective = rd_u64(r);
        plan->proc.caps.permitted = rd_u64(r);
        plan->proc.caps.inheritable = rd_u64(r);
        plan->proc.caps.ambient = rd_u64(r);
    }
    plan->proc.no_new_privs = rd_bool(r);
    const char *hex = rd_str(r);
    size_t hex_len = strlen(hex);
    if (hex_len) {
        if (hex_len % 16 != 0 && !r->error) r->error = "seccomp filter is not a whole number of 8-byte instructions";
        plan->proc.seccomp_len = hex_len / 2;
        plan->proc.seccomp = xcalloc(plan->proc.seccomp_len, 1);
        for (size_t i = 0; i < plan->proc.seccomp_len && !r->error; i++) {
            int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) r->error = "seccomp filter is not hex";
            plan->proc.seccomp[i] = (unsigned char)(hi << 4 | lo);
        }
    }
    plan->proc.n_rlimits = rd_count(r);
    plan->proc.rlimits = xcalloc(plan->proc.n_rlimits, sizeof *plan->proc.rlimits);
    for (size_t i = 0; i < plan->proc.n_rlimits; i++) {
        plan->proc.rlimits[i].resource = (int)rd_u32(r);
        plan->proc.rlimits[i].soft = rd_u64(r);
        plan->proc.rlimits[i].hard = rd_u64(r);
    }
    const char *oom = rd_str(r);
    if (*oom) {
        struct reader sub = { (char *)oom, (char *)oom + strlen(oom) + 1, NULL };
        plan->proc.has_oom = true;
        plan->proc.oom_score_adj = (long)rd_i64(&sub);
        if (sub.error && !r->error) r->error = sub.error;
    }
    plan->proc.search_path = rd_bool(r);
    plan->proc.terminal = rd_bool(r);
    plan->proc.console_rows = (unsigned)rd_u32(r) & 0xffff;
    plan->proc.console_cols = (unsigned)rd_u32(r) & 0xffff;
    plan->proc.umask = (long)rd_i64(r);

    const char *mode = rd_str(r);
    if (!strcmp(mode, "detached")) plan->mon.mode = MONITOR_DETACHED;
    else if (!strcmp(mode, "foreground")) plan->mon.mode = MONITOR_FOREGROUND;
    else if (!strcmp(mode, "handoff")) plan->mon.mode = MONITOR_HANDOFF;
    else if (!r->error) r->error = "bad monitor mode";
    plan->mon.log_path = rd_opt_str(r);
    plan->mon.exit_file = rd_opt_str(r);
    plan->mon.pid_file = rd_opt_str(r);
    plan->mon.on_exit = rd_strv(r);
    plan->mon.die_with_parent = rd_bool(r);
    plan->mon.console_socket = rd_opt_str(r);
    plan->mon.terminal_stdin = rd_bool(r);

    rd_expect(r, "end");
    if (!r->error && r->p != r->end) r->error = "trailing bytes after the plan";
    for (size_t i = 0; i < plan->n_outer && !r->error; i++) {
        if (plan->outer[i].kind == OP_SYNC) r->error = "sync is an innerOps operation (the container process waits there)";
    }
    for (size_t i = 0; i < plan->n_inner && !r->error; i++) {
        if (plan->inner[i].kind == OP_SYNC && !plan->hold) r->error = "sync needs hold (the control fd stays open)";
    }
    if (!r->error && plan->start_fifo && !plan->hold) r->error = "startFifo needs hold";
    if (!r->error && plan->n_forwards && plan->mon.mode == MONITOR_HANDOFF) r->error = "port forwards need a monitor that stays (not handoff)";
    if (!r->error && plan->n_forwards) {
        bool new_net = false;
        for (size_t i = 0; i < plan->n_ns; i++) new_net |= plan->ns[i].flag == CLONE_NEWNET && !plan->ns[i].path;
        if (!new_net) r->error = "port forwards need a new network namespace";
    }
    if (!r->error && plan->mon.mode == MONITOR_HANDOFF && plan->proc.terminal && !plan->mon.console_socket)
        r->error = "a terminal in handoff mode needs a console socket (nobody else would hold its controlling side)";
    return r->error;
}

/* ------------------------------------------------------------------------ */
/* --decode: the plan back as JSON, for the encoder's round-trip tests        */
/* ------------------------------------------------------------------------ */

static void out_str(const char *s) {
    struct line l = { .len = 0 };
    ln_str(&l, s);
    fwrite(l.buf, 1, l.len, stdout);
}

static void out_opt_str(const char *s) {
    if (s) out_str(s);
    else fputs("null", stdout);
}

static void out_strv(const struct strv *sv) {
    putchar('[');
    for (size_t i = 0; i < sv->n; i++) {
        if (i) putchar(',');
        out_str(sv->v[i]);
    }
    putchar(']');
}

static void out_idmap(const struct idmap_entry *m, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        printf("%s{\"inside\":%lu,\"outside\":%lu,\"count\":%lu}", i ? "," : "", m[i].inside, m[i].outside, m[i].count);
    }
    putchar(']');
}

static const char *ensure_name(enum ensure e) {
    return e == ENSURE_DIR ? "dir" : e == ENSURE_FILE ? "file" : "none";
}

static void out_ops(const struct op *ops, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &ops[i];
        printf("%s{\"op\":\"%s\"", i ? "," : "", op_names[op->kind]);
        switch (op->kind) {
        case OP_SET_ROOT:
        case OP_CHDIR:
        case OP_PIVOT_ROOT:
        case OP_MASK:
        case OP_READONLY:
            fputs(",\"path\":", stdout);
            out_str(op->path);
            break;
        case OP_MOUNT:
            fputs(",\"source\":", stdout);
            out_str(op->source);
            fputs(",\"target\":", stdout);
            out_str(op->target);
            fputs(",\"fstype\":", stdout);
            out_str(op->fstype);
            printf(",\"flags\":%lu,\"data\":", op->flags);
            out_str(op->data);
            printf(",\"inRoot\":%s,\"ensure\":\"%s\",\"keepLockedFlags\":%s,\"optional\":%s", op->in_root ? "true" : "false",
                   ensure_name(op->ensure), op->keep_locked ? "true" : "false", op->optional ? "true" : "false");
            break;
        case OP_MKDIR:
            fputs(",\"path\":", stdout);
            out_str(op->path);
            printf(",\"mode\":%u,\"inRoot\":%s", op->mode, op->in_root ? "true" : "false");
            break;
        case OP_SYMLINK:
            fputs(",\"target\":", stdout);
            out_str(op->target);
            fputs(",\"path\":", stdout);
            out_str(op->path);
            printf(",\"inRoot\":%s", op->in_root ? "true" : "false");
            break;
        case OP_WRITE_FILE:
            fputs(",\"path\":", stdout);
            out_str(op->path);
            fputs(",\"content\":", stdout);
            out_str(op->data);
            printf(",\"inRoot\":%s", op->in_root ? "true" : "false");
            break;
        case OP_SPAWN_MOUNT:
            fputs(",\"args\":", stdout);
            out_strv(&op->args);
            fputs(",\"target\":", stdout);
            out_str(op->target);
            break;
        case OP_UMOUNT:
            fputs(",\"target\":", stdout);
            out_str(op->target);
            printf(",\"flags\":%lu", op->flags);
            break;
        case OP_SETHOSTNAME:
            fputs(",\"name\":", stdout);
            out_str(op->data);
            break;
        case OP_SYNC:
            fputs(",\"name\":", stdout);
            out_str(op->path);
            break;
        case OP_LOOPBACK_UP:
            break;
        }
        putchar('}');
    }
    putchar(']');
}

static void print_plan(const struct plan *p) {
    printf("{\"trace\":%s,\"user\":", p->trace ? "true" : "false");
    if (p->user_mode == USER_NONE) {
        fputs("{\"mode\":\"none\"}", stdout);
    } else if (p->user_mode == USER_JOIN) {
        fputs("{\"mode\":\"join\",\"path\":", stdout);
        out_str(p->user_path);
        putchar('}');
    } else {
        fputs("{\"mode\":\"new\",\"uidMap\":", stdout);
        out_idmap(p->uid_map, p->n_uid_map);
        fputs(",\"gidMap\":", stdout);
        out_idmap(p->gid_map, p->n_gid_map);
        fputs(",\"uidHelper\":", stdout);
        out_opt_str(p->uid_helper);
        fputs(",\"gidHelper\":", stdout);
        out_opt_str(p->gid_helper);
        printf(",\"setgroups\":\"%s\"}", p->setgroups_deny ? "deny" : "allow");
    }
    fputs(",\"joinCgroup\":", stdout);
    out_opt_str(p->join_cgroup);
    printf(",\"hold\":%s", p->hold ? "true" : "false");
    printf(",\"holdBeforeNamespaces\":%s,\"watchOom\":%s", p->hold_setup ? "true" : "false", p->watch_oom ? "true" : "false");
    fputs(",\"startFifo\":", stdout);
    out_opt_str(p->start_fifo);
    fputs(",\"portForwards\":[", stdout);
    for (size_t i = 0; i < p->n_forwards; i++) {
        const struct port_forward *f = &p->forwards[i];
        fputs(i ? ",{\"hostIp\":" : "{\"hostIp\":", stdout);
        out_str(f->host_ip);
        printf(",\"hostPort\":%u,\"containerIp\":", f->host_port);
        out_str(f->container_ip);
        printf(",\"containerPort\":%u}", f->container_port);
    }
    putchar(']');
    fputs(",\"namespaces\":[", stdout);
    for (size_t i = 0; i < p->n_ns; i++) {
        printf("%s{\"type\":\"%s\",\"path\":", i ? "," : "", p->ns[i].name);
        out_opt_str(p->ns[i].path);
        putchar('}');
    }
    fputs("],\"outerOps\":", stdout);
    out_ops(p->outer, p->n_outer);
    fputs(",\"innerOps\":", stdout);
    out_ops(p->inner, p->n_inner);
    fputs(",\"process\":{\"args\":", stdout);
    out_strv(&p->proc.args);
    fputs(",\"env\":", stdout);
    out_strv(&p->proc.env);
    fputs(",\"cwd\":", stdout);
    out_str(p->proc.cwd);
    printf(",\"uid\":%lu,\"gid\":%lu,\"additionalGids\":[", p->proc.uid, p->proc.gid);
    for (size_t i = 0; i < p->proc.n_gids; i++) printf("%s%u", i ? "," : "", (unsigned)p->proc.gids[i]);
    fputs("],\"capabilities\":", stdout);
    if (p->proc.has_caps) {
        printf("{\"bounding\":\"%llu\",\"effective\":\"%llu\",\"permitted\":\"%llu\",\"inheritable\":\"%llu\",\"ambient\":\"%llu\"}",
               p->proc.caps.bounding, p->proc.caps.effective, p->proc.caps.permitted, p->proc.caps.inheritable,
               p->proc.caps.ambient);
    } else {
        fputs("null", stdout);
    }
    printf(",\"noNewPrivileges\":%s,\"seccompFilter\":", p->proc.no_new_privs ? "true" : "false");
    if (p->proc.seccomp) {
        putchar('"');
        for (size_t i = 0; i < p->proc.seccomp_len; i++) printf("%02x", p->proc.seccomp[i]);
        putchar('"');
    } else {
        fputs("null", stdout);
    }
    fputs(",\"rlimits\":[", stdout);
    for (size_t i = 0; i < p->proc.n_rlimits; i++) {
        printf("%s{\"resource\":%d,\"soft\":\"%llu\",\"hard\":\"%llu\"}", i ? "," : "", p->proc.rlimits[i].resource,
               p->proc.rlimits[i].soft, p->proc.rlimits[i].hard);
    }
    fputs("],\"oomScoreAdj\":", stdout);
    if (p->proc.has_oom) printf("%ld", p->proc.oom_score_adj);
    else fputs("null", stdout);
    printf(",\"searchPath\":%s,\"terminal\":%s,\"consoleSize\":", p->proc.search_path ? "true" : "false",
           p->proc.terminal ? "true" : "false");
    if (p->proc.console_rows && p->proc.console_cols) printf("{\"rows\":%u,\"cols\":%u}", p->proc.console_rows, p->proc.console_cols);
    else fputs("null", stdout);
    fputs(",\"umask\":", stdout);
    if (p->proc.umask >= 0) printf("%ld", p->proc.umask);
    else fputs("null", stdout);
    printf("},\"monitor\":{\"mode\":\"%s\",\"logPath\":",
           p->mon.mode == MONITOR_DETACHED ? "detached" : p->mon.mode == MONITOR_HANDOFF ? "handoff" : "foreground");
    out_opt_str(p->mon.log_path);
    fputs(",\"exitFile\":", stdout);
    out_opt_str(p->mon.exit_file);
    fputs(",\"pidFile\":", stdout);
    out_opt_str(p->mon.pid_file);
    fputs(",\"onExit\":", stdout);
    out_strv(&p->mon.on_exit);
    printf(",\"dieWithParent\":%s,\"consoleSocket\":", p->mon.die_with_parent ? "true" : "false");
    out_opt_str(p->mon.console_socket);
    printf(",\"terminalStdin\":%s}}\n", p->mon.terminal_stdin ? "true" : "false");
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* Reads "<length>\n" and then exactly <length> bytes: the fd may stay open
 * afterwards (as the control fd), so EOF cannot mark the end of the plan. */
static char *read_plan(int fd, size_t *len_out, const char **error) {
    char header[24];
    size_t h = 0;
    for (;;) {
        ssize_t n = read(fd, header + h, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *error = n == 0 ? "no plan (EOF before the length line)" : strerror(errno);
            return NULL;
        }
        if (header[h] == '\n') break;
        if (header[h] < '0' || header[h] > '9' || ++h == sizeof header - 1) {
            *error = "bad plan length line";
            return NULL;
        }
    }
    header[h] = '\0';
    unsigned long long len = strtoull(header, NULL, 10);
    if (h == 0 || len > PLAN_MAX_BYTES) {
        *error = "bad plan length";
        return NULL;
    }
    char *buf = malloc(len + 1);
    if (!buf) {
        *error = "out of memory";
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *error = n == 0 ? "truncated plan (EOF)" : strerror(errno);
            free(buf);
            return NULL;
        }
        got += (size_t)n;
    }
    *len_out = got;
    return buf;
}

static void xpipe(int fds[2], const char *what) {
    if (pipe2(fds, O_CLOEXEC) < 0) fail(errno, "create %s pipe", what);
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pidfd_open_self(void) {
    return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

/*
 * Dies with the parent: PR_SET_PDEATHSIG, then a check through a pidfd of the
 * parent that it did not die before the prctl (getppid() cannot tell when the
 * parent is outside our pid namespace). Credential changes clear the death
 * signal, so this is called again after setuid.
 */
static void die_with_parent(int parent_pidfd) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(errno, "prctl(PR_SET_PDEATHSIG)");
    if (parent_pidfd >= 0) {
        struct pollfd pfd = { parent_pidfd, POLLIN, 0 };
        if (poll(&pfd, 1, 0) > 0) _exit(EXIT_INTERNAL); /* the parent is gone: nobody to report to */
    }
}

/* The signals the monitor forwards to the container. */
static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU };
#define N_FORWARDED (sizeof forwarded_signals / sizeof forwarded_signals[0])

/* A fresh child must not keep the monitor's blocked mask or ignored signals:
 * both survive execve. */
static void reset_signals(const sigset_t *original_mask) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL);
    }
    sigprocmask(SIG_SETMASK, original_mask, NULL);
}

static void redirect(int fd, int to) {
    if (fd != to && dup2(fd, to) < 0) fail(errno, "dup2 %d -> %d", fd, to);
}

static int open_dev_null(int flags) {
    int fd = open("/dev/null", flags | O_CLOEXEC);
    if (fd < 0) fail(errno, "open /dev/null");
    return fd;
}

static const char *signal_name(int sig) {
    const char *abbrev = sigabbrev_np(sig);
    static char buf[32];
    snprintf(buf, sizeof buf, "SIG%s", abbrev ? abbrev : "?");
    return buf;
}

/* Writes a small file atomically: a temporary name in the same directory, then rename. */
/* One descriptor over a unix socket (SCM_RIGHTS); the payload is a name, as runc sends its console's. */
static int send_fd(int sock, int fd, const char *name) {
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec iov = { (void *)name, strlen(name) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

/* The descriptor sent by send_fd; -1 with errno 0 at EOF, or with the error. */
static int recv_fd(int sock) {
    char name[256], control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { name, sizeof name };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    ssize_t n;
    do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0) errno = 0;
        return -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
            return fd;
        }
    }
    errno = EBADMSG;
    return -1;
}

static int write_file_atomic(const char *path, const char *content) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp) return ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    write_all(fd, content, strlen(content));
    int err = fsync(fd) < 0 ? errno : 0;
    close(fd);
    if (!err && rename(tmp, path) < 0) err = errno;
    if (err) unlink(tmp);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Mount operations                                                          */
/* ------------------------------------------------------------------------ */

struct opctx {
    int rootfd;            /* the last set-root, O_PATH */
    pid_t daemons[MAX_DAEMONS];
    size_t n_daemons;
    int self_pidfd;        /* for children started by ops (spawn-mount) */
};

static void mount_flag_names(unsigned long flags, char *out, size_t size) {
    static const struct { unsigned long flag; const char *name; } names[] = {
        { MS_RDONLY, "rdonly" }, { MS_NOSUID, "nosuid" }, { MS_NODEV, "nodev" }, { MS_NOEXEC, "noexec" },
        { MS_SYNCHRONOUS, "sync" }, { MS_REMOUNT, "remount" }, { MS_DIRSYNC, "dirsync" }, { MS_NOSYMFOLLOW, "nosymfollow" },
        { MS_NOATIME, "noatime" }, { MS_NODIRATIME, "nodiratime" }, { MS_BIND, "bind" }, { MS_MOVE, "move" },
        { MS_REC, "rec" }, { MS_UNBINDABLE, "unbindable" }, { MS_PRIVATE, "private" }, { MS_SLAVE, "slave" },
        { MS_SHARED, "shared" }, { MS_RELATIME, "relatime" }, { MS_STRICTATIME, "strictatime" },
    };
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(flags & names[i].flag)) continue;
        int n = snprintf(out + len, size - len, "%s%s", len ? "," : "", names[i].name);
        if (n < 0 || (size_t)n >= size - len) break;
        len += (size_t)n;
    }
}

static int openat2_fd(int dirfd, const char *path, int flags, unsigned long long mode, unsigned long long resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags;
    how.mode = mode;
    how.resolve = resolve;
    int fd;
    do fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* Where a path is resolved: inside the container's root (never leaving it,
 * whatever the symlinks say), or as an ordinary path. */
struct base {
    int fd;                      /* owned */
    const char *rel;             /* path relative to fd, never starting with '/'; "" is the base itself */
    unsigned long long resolve;  /* RESOLVE_* flags */
};

static struct base path_base(struct opctx *ctx, const char *path, bool in_root, const char *what) {
    struct base b;
    if (in_root) {
        if (ctx->rootfd < 0) fail_with(EXIT_INTERNAL, 0, "an inRoot operation comes before any set-root", what);
        b.fd = fcntl(ctx->rootfd, F_DUPFD_CLOEXEC, 3);
        b.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    } else {
        b.fd = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        b.resolve = 0;
    }
    if (b.fd < 0) fail(errno, "%s: open the base directory", what);
    while (*path == '/') path++;
    b.rel = path;
    return b;
}

static int open_existing(const struct base *b, const char *rel, int flags) {
    return openat2_fd(b->fd, *rel ? rel : ".", flags | O_CLOEXEC, 0, b->resolve);
}

/*
 * Opens the parent directory of b->rel, creating missing directories on the
 * way (mode 0755), each resolved again from the base so that a symlink can
 * never lead outside the root. Returns an O_PATH fd and the last component.
 */
static int open_parent(const struct base *b, char *scratch, const char **last, const char *what) {
    /* scratch holds a copy of b->rel; we cut it at each '/' in turn */
    size_t len = strlen(scratch);
    while (len > 1 && scratch[len - 1] == '/') scratch[--len] = '\0';
    char *slash = strrchr(scratch, '/');
    if (!slash) {
        *last = scratch;
        int fd = fcntl(b->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) fail(errno, "%s: dup", what);
        return fd;
    }
    *slash = '\0';
    *last = slash + 1;
    /* walk the parent path component by component */
    int parent = fcntl(b->fd, F_DUPFD_CLOEXEC, 3);
    if (parent < 0) fail(errno, "%s: dup", what);
    char *p = scratch;
    for (;;) {
        char *next = strchr(p, '/');
        if (next) *next = '\0';
        if (*p) {
            int fd = open_existing(b, scratch, O_PATH | O_DIRECTORY);
            if (fd < 0 && errno == ENOENT) {
                if (mkdirat(parent, p, 0755) < 0 && errno != EEXIST) fail(errno, "%s: mkdir %s", what, scratch);
                fd = open_existing(b, scratch, O_PATH | O_DIRECTORY);
            }
            if (fd < 0) fail(errno, "%s: open %s", what, scratch);
            close(parent);
            parent = fd;
        }
        if (!next) break;
        *next = '/';
        p = next + 1;
    }
    return parent;
}

/*
 * Opens an op's path as O_PATH, creating it when missing as `ensure` says
 * (the mount point of a bind mount must be a file when the source is one).
 */
static int open_target(struct opctx *ctx, const char *path, bool in_root, enum ensure ensure, unsigned mode, const char *what) {
    struct base b = path_base(ctx, path, in_root, what);
    int fd = open_existing(&b, b.rel, O_PATH);
    if (fd < 0 && errno == ENOENT && ensure != ENSURE_NONE) {
        char scratch[PATH_MAX];
        if (snprintf(scratch, sizeof scratch, "%s", b.rel) >= (int)sizeof scratch) fail(ENAMETOOLONG, "%s", what);
        const char *last;
        int parent = open_parent(&b, scratch, &last, what);
        if (ensure == ENSURE_DIR) {
            if (mkdirat(parent, last, mode) < 0) {
                if (errno != EEXIST) fail(errno, "%s: mkdir", what);
            } else if (fchmodat(parent, last, mode, 0) < 0) {
                fail(errno, "%s: chmod", what); /* the umask must not decide the mode */
            }
        } else {
            int created = openat(parent, last, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (created < 0 && errno != EEXIST) fail(errno, "%s: create the file", what);
            if (created >= 0) close(created);
        }
        close(parent);
        fd = open_existing(&b, b.rel, O_PATH);
    }
    int err = errno;
    close(b.fd);
    errno = err;
    return fd;
}

/* A bind remount in a user namespace must repeat the flags the kernel locked
 * on the original mount (nosuid, nodev, noexec, atime), or it gets EPERM. */
static unsigned long locked_flags(const char *target, unsigned long wanted, const char *what) {
    struct statvfs st;
    if (statvfs(target, &st) < 0) fail(errno, "%s: statvfs", what);
    unsigned long flags = 0;
    if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (!(wanted & (MS_NOATIME | MS_RELATIME | MS_STRICTATIME))) {
        if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
        if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    }
    if (!(wanted & MS_NODIRATIME) && (st.f_flag & ST_NODIRATIME)) flags |= MS_NODIRATIME;
    return flags;
}

static void do_mount(struct opctx *ctx, const struct op *op) {
    char what[PATH_MAX + 64];
    if (op->flags & MS_REMOUNT) snprintf(what, sizeof what, "remount %s", op->target);
    else if (!*op->source && !*op->fstype) snprintf(what, sizeof what, "change propagation of %s", op->target);
    else snprintf(what, sizeof what, "mount %s on %s", *op->source ? op->source : op->fstype, op->target);
    char target[64];
    const char *target_path = op->target;
    int fd = -1;
    if (op->in_root || op->ensure != ENSURE_NONE) {
        fd = open_target(ctx, op->target, op->in_root, op->ensure, 0755, what);
        if (fd < 0) {
            if (op->optional) {
                step("%s: skipped (%s)", what, strerrorname_np(errno));
                return;
            }
            fail(errno, "%s", what);
        }
        snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
        target_path = target;
    }
    unsigned long flags = op->flags;
    if (op->keep_locked) flags |= locked_flags(target_path, flags, what);
    char names[256];
    mount_flag_names(flags, names, sizeof names);
    step("mount %s on %s%s%s (%s)%s%s", *op->source ? op->source : "none", op->target, *op->fstype ? " type " : "",
         op->fstype, names, *op->data ? " " : "", op->data);
    if (mount(*op->source ? op->source : NULL, target_path, *op->fstype ? op->fstype : NULL, flags,
              *op->data ? op->data : NULL) < 0) {
        int err = errno;
        if (!op->optional) fail(err, "%s", what);
        step("%s: skipped (%s)", what, strerrorname_np(err));
    }
    if (fd >= 0) close(fd);
}

/* maskedPaths: hide a file under /dev/null, a directory under an empty read-only tmpfs. */
static void do_mask(const struct op *op) {
    struct stat st;
    if (stat(op->path, &st) < 0) {
        if (errno == ENOENT) return;
        fail(errno, "mask %s", op->path);
    }
    if (S_ISDIR(st.st_mode)) {
        step("mask %s (empty read-only tmpfs)", op->path);
        if (mount("tmpfs", op->path, "tmpfs", MS_RDONLY, "size=0,mode=0555") < 0) fail(errno, "mask %s", op->path);
    } else {
        step("mask %s (bind /dev/null)", op->path);
        if (mount("/dev/null", op->path, NULL, MS_BIND, NULL) < 0) fail(errno, "mask %s", op->path);
    }
}

/* readonlyPaths: bind the path onto itself, then remount that bind read-only. */
static void do_readonly(const struct op *op) {
    struct stat st;
    if (stat(op->path, &st) < 0) {
        if (errno == ENOENT) return;
        fail(errno, "make %s read-only", op->path);
    }
    step("mount %s read-only (bind, remount)", op->path);
    if (mount(op->path, op->path, NULL, MS_BIND | MS_REC, NULL) < 0) fail(errno, "make %s read-only: bind", op->path);
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY;
    flags |= locked_flags(op->path, flags, op->path);
    if (mount(op->path, op->path, NULL, flags, NULL) < 0) fail(errno, "make %s read-only: remount", op->path);
}

static void do_mkdir(struct opctx *ctx, const struct op *op) {
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "mkdir %s", op->path);
    step("mkdir %s (mode %04o)%s", op->path, op->mode, op->in_root ? " in root" : "");
    int fd = open_target(ctx, op->path, op->in_root, ENSURE_DIR, op->mode, what);
    if (fd < 0) fail(errno, "%s", what);
    struct stat st;
    if (fstat(fd, &st) < 0) fail(errno, "%s", what);
    if (!S_ISDIR(st.st_mode)) fail(ENOTDIR, "%s", what);
    close(fd);
}

static void do_symlink(struct opctx *ctx, const struct op *op) {
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "symlink %s -> %s", op->path, op->target);
    step("%s", what);
    struct base b = path_base(ctx, op->path, op->in_root, what);
    char scratch[PATH_MAX];
    if (snprintf(scratch, sizeof scratch, "%s", b.rel) >= (int)sizeof scratch || !*scratch) fail(EINVAL, "%s", what);
    const char *last;
    int parent = open_parent(&b, scratch, &last, what);
    if (symlinkat(op->target, parent, last) < 0) {
        int err = errno;
        char existing[PATH_MAX];
        ssize_t n = err == EEXIST ? readlinkat(parent, last, existing, sizeof existing - 1) : -1;
        if (n < 0 || (existing[n] = '\0', strcmp(existing, op->target) != 0)) fail(err, "%s", what);
    }
    close(parent);
    close(b.fd);
}

static void do_write_file(struct opctx *ctx, const struct op *op) {
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "write %s", op->path);
    step("write %s (%zu bytes)%s", op->path, strlen(op->data), op->in_root ? " in root" : "");
    struct base b = path_base(ctx, op->path, op->in_root, what);
    char scratch[PATH_MAX];
    if (snprintf(scratch, sizeof scratch, "%s", b.rel) >= (int)sizeof scratch || !*scratch) fail(EINVAL, "%s", what);
    const char *last;
    int parent = open_parent(&b, scratch, &last, what);
    close(parent);
    /* Resolved from the base again: a symlink at the last component is followed, but never out of the root. */
    int fd = openat2_fd(b.fd, b.rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644, b.resolve);
    if (fd < 0) fail(errno, "%s", what);
    size_t len = strlen(op->data);
    const char *p = op->data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(errno, "%s", what);
        p += n;
        len -= (size_t)n;
    }
    close(fd);
    close(b.fd);
}

/* Reads what a failed helper wrote on stderr (a memfd or a pipe), on one line. */
static void read_helper_stderr(int fd, bool from_start, char *out, size_t size) {
    ssize_t n = from_start ? pread(fd, out, size - 1, 0) : read(fd, out, size - 1);
    if (n < 0) n = 0;
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
    for (ssize_t i = 0; i < n; i++) {
        if (out[i] == '\n') out[i] = ' ';
    }
}

static void describe_wait_status(int status, char *out, size_t size) {
    if (WIFEXITED(status)) snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(out, size, "was killed by %s", signal_name(WTERMSIG(status)));
    else snprintf(out, size, "stopped");
}

/*
 * spawn-mount: start a FUSE daemon that must live in this mount namespace
 * (fuse-overlayfs -f), and wait until its target is a mount point, that is,
 * until stat(target) reports another device than before.
 */
static void do_spawn_mount(struct opctx *ctx, const struct op *op, const sigset_t *original_mask) {
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "spawn-mount %s on %s", op->args.v[0], op->target);
    if (ctx->n_daemons >= MAX_DAEMONS) fail_with(EXIT_INTERNAL, 0, "too many spawn-mount daemons", what);
    char cmdline[2048];
    size_t len = 0;
    for (size_t i = 0; i < op->args.n && len < sizeof cmdline - 1; i++) {
        int n = snprintf(cmdline + len, sizeof cmdline - len, "%s%s", i ? " " : "", op->args.v[i]);
        if (n < 0) break;
        len += (size_t)n;
    }
    step("spawn-mount: %s", cmdline);
    struct stat before;
    if (stat(op->target, &before) < 0) fail(errno, "%s: stat the target", what);
    int err_fd = memfd_create("nook-spawn-mount-stderr", MFD_CLOEXEC);
    if (err_fd < 0) fail(errno, "%s: memfd_create", what);
    int null_fd = open_dev_null(O_RDWR);
    long long start = now_ms();
    pid_t pid = fork();
    if (pid < 0) fail(errno, "%s: fork", what);
    if (pid == 0) {
        /* The daemon dies with the setup process that started it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct pollfd pfd = { ctx->self_pidfd, POLLIN, 0 };
        if (ctx->self_pidfd >= 0 && poll(&pfd, 1, 0) > 0) _exit(EXIT_INTERNAL);
        reset_signals(original_mask);
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(err_fd, 2);
        close_range(3, ~0U, 0);
        execvp(op->args.v[0], op->args.v);
        dprintf(2, "cannot execute %s: %s\n", op->args.v[0], strerror(errno));
        _exit(EXIT_NOT_FOUND);
    }
    close(null_fd);
    ctx->daemons[ctx->n_daemons++] = pid;
    remember_child(pid);
    long delay = 1;
    for (;;) {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            ctx->n_daemons--;
            g.n_kill--;
            char out[1024], how[64], msg[1200];
            read_helper_stderr(err_fd, true, out, sizeof out);
            describe_wait_status(status, how, sizeof how);
            snprintf(msg, sizeof msg, "%s %s before mounting%s%s", op->args.v[0], how, *out ? ": " : "", out);
            fail_with(EXIT_INTERNAL, 0, msg, what);
        }
        struct stat now;
        if (stat(op->target, &now) == 0 && now.st_dev != before.st_dev) break;
        if (now_ms() - start > SPAWN_MOUNT_TIMEOUT_MS) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s did not mount %s within %d s", op->args.v[0], op->target, SPAWN_MOUNT_TIMEOUT_MS / 1000);
            fail_with(EXIT_INTERNAL, 0, msg, what);
        }
        sleep_ms(delay);
        if (delay < 20) delay *= 2;
    }
    close(err_fd);
    step("spawn-mount: %s mounted after %lld ms (pid %d)", op->target, now_ms() - start, (int)pid);
}

/* runc's trick: pivot_root(".", ".") stacks the old root under the new one;
 * unmounting "." then removes the old root from this mount namespace. */
static void do_pivot_root(const struct op *op) {
    step("pivot_root %s", op->path);
    int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (old_root < 0) fail(errno, "pivot_root: open /");
    int new_root = open(op->path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (new_root < 0) fail(errno, "pivot_root: open %s", op->path);
    if (fchdir(new_root) < 0) fail(errno, "pivot_root: chdir %s", op->path);
    if (syscall(SYS_pivot_root, ".", ".") < 0) fail(errno, "pivot_root %s", op->path);
    if (fchdir(old_root) < 0) fail(errno, "pivot_root: chdir to the old root");
    /* The old root may be shared with the host: make sure our unmount does not propagate. */
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) fail(errno, "pivot_root: make the old root a slave");
    if (umount2(".", MNT_DETACH) < 0) fail(errno, "pivot_root: unmount the old root");
    if (chdir("/") < 0) fail(errno, "pivot_root: chdir /");
    close(old_root);
    close(new_root);
}

/* A sync point (container process only): the monitor reports "paused", nook
 * does what must happen at this point (OCI hooks that need the container's
 * namespaces before pivot_root) and writes one byte on the control fd. */
static void do_sync(const struct op *op) {
    step("sync %s: waiting for nook", op->path);
    write_all(g.exec_fd, "S", 1);
    char go;
    ssize_t n;
    do n = read(PLAN_FD, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        char what[PATH_MAX];
        snprintf(what, sizeof what, "sync %s", op->path);
        fail_with(EXIT_INTERNAL, n < 0 ? errno : 0, "nook closed the control fd (or failed) at this point", what);
    }
}

/* A new network namespace starts with lo down; an ioctl brings it up without
 * spawning `ip` (what podman's netns setup does too, via netlink). */
static void do_loopback_up(void) {
    step("ip link set lo up");
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(errno, "socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) fail(errno, "read the flags of lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) fail(errno, "bring lo up");
    close(fd);
}

static void run_ops(struct opctx *ctx, const struct op *ops, size_t n, const sigset_t *original_mask) {
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &ops[i];
        switch (op->kind) {
        case OP_SET_ROOT:
            step("set-root %s", op->path);
            close_fd(&ctx->rootfd);
            ctx->rootfd = open(op->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (ctx->rootfd < 0) fail(errno, "set-root %s", op->path);
            break;
        case OP_MOUNT:
            do_mount(ctx, op);
            break;
        case OP_MKDIR:
            do_mkdir(ctx, op);
            break;
        case OP_SYMLINK:
            do_symlink(ctx, op);
            break;
        case OP_WRITE_FILE:
            do_write_file(ctx, op);
            break;
        case OP_SPAWN_MOUNT:
            do_spawn_mount(ctx, op, original_mask);
            break;
        case OP_CHDIR:
            step("chdir %s", op->path);
            if (chdir(op->path) < 0) fail(errno, "chdir %s", op->path);
            break;
        case OP_PIVOT_ROOT:
            do_pivot_root(op);
            break;
        case OP_UMOUNT:
            step("umount %s (flags %#lx)", op->target, op->flags);
            if (umount2(op->target, (int)op->flags) < 0) fail(errno, "umount %s", op->target);
            break;
        case OP_SETHOSTNAME:
            step("sethostname %s", op->data);
            if (sethostname(op->data, strlen(op->data)) < 0) fail(errno, "sethostname %s", op->data);
            break;
        case OP_MASK:
            do_mask(op);
            break;
        case OP_READONLY:
            do_readonly(op);
            break;
        case OP_SYNC:
            do_sync(op);
            break;
        case OP_LOOPBACK_UP:
            do_loopback_up();
            break;
        }
    }
}

static void close_port_listeners(const struct plan *plan);

/* ------------------------------------------------------------------------ */
/* The container process: innerOps, process settings, execve                 */
/* ------------------------------------------------------------------------ */

static int last_cap(void) {
    int cap = 0;
    while (prctl(PR_CAPBSET_READ, cap + 1) >= 0) cap++;
    return cap;
}

static void apply_bounding_set(const struct caps *caps, int last) {
    for (int cap = 0; cap <= last; cap++) {
        if (caps->bounding & (1ull << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap) < 0 && errno != EINVAL) fail(errno, "drop capability %d from the bounding set", cap);
    }
}

static void apply_capabilities(const struct caps *caps, int last) {
    unsigned long long valid = last >= 63 ? ~0ull : (1ull << (last + 1)) - 1;
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    unsigned long long eff = caps->effective & valid, perm = caps->permitted & valid, inh = caps->inheritable & valid;
    data[0].effective = (uint32_t)eff;
    data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)perm;
    data[1].permitted = (uint32_t)(perm >> 32);
    data[0].inheritable = (uint32_t)inh;
    data[1].inheritable = (uint32_t)(inh >> 32);
    if (syscall(SYS_capset, &header, data) < 0) fail(errno, "capset (effective %#llx, permitted %#llx, inheritable %#llx)", eff, perm, inh);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail(errno, "clear the ambient capabilities");
    for (int cap = 0; cap <= last; cap++) {
        if (!(caps->ambient & (1ull << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) fail(errno, "raise ambient capability %d", cap);
    }
}

static void load_seccomp(const struct plan *plan) {
    struct sock_fprog prog;
    prog.len = (unsigned short)(plan->proc.seccomp_len / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)plan->proc.seccomp;
    step("seccomp: %u instructions%s", prog.len, plan->proc.no_new_privs ? "" : " (loaded while privileged: no_new_privs is off)");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) fail(errno, "load the seccomp filter (%u instructions)", prog.len);
}

static const char *env_value(const struct strv *env, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < env->n; i++) {
        if (!strncmp(env->v[i], name, n) && env->v[i][n] == '=') return env->v[i] + n + 1;
    }
    return NULL;
}

/* 0: an executable file; EACCES: a file that cannot be executed; else: nothing usable there
 * (a directory of PATH we may not search counts as nothing, as for a shell). */
static int check_executable(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) return ENOENT;
    if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0) return EACCES;
    return 0;
}

/* execvp's search, done before execve so the trace can show the real path and
 * the error can say whether nothing was found (127) or could not be run (126). */
static const char *find_executable(const struct plan *plan, char *buf, size_t size) {
    const char *name = plan->proc.args.v[0];
    if (!plan->proc.search_path || strchr(name, '/')) return name;
    const char *path = env_value(&plan->proc.env, "PATH");
    if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    bool denied = false;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t dir_len = end ? (size_t)(end - path) : strlen(path);
        if (dir_len == 0) snprintf(buf, size, "%s", name); /* an empty entry is the cwd */
        else snprintf(buf, size, "%.*s/%s", (int)dir_len, path, name);
        int err = check_executable(buf);
        if (err == 0) return buf;
        if (err == EACCES) denied = true;
        if (!end) break;
        path = end + 1;
    }
    char msg[PATH_MAX + 64], what[PATH_MAX + 16];
    snprintf(what, sizeof what, "execve %s", name);
    if (denied) {
        snprintf(msg, sizeof msg, "executable file \"%s\" found in $PATH but permission denied", name);
        fail_with(EXIT_CANNOT_INVOKE, EACCES, msg, what);
    }
    snprintf(msg, sizeof msg, "executable file \"%s\" not found in $PATH", name);
    fail_with(EXIT_NOT_FOUND, ENOENT, msg, what);
}

struct container_args {
    const struct plan *plan;
    const sigset_t *original_mask;
    int parent_pidfd; /* the setup process */
    bool own_mount_ns;
    int last_cap;
    int console_fd;   /* with a terminal: the socket to the monitor */
    int start_fifo;   /* with plan.startFifo: its read end */
};

/*
 * process.terminal: the container's terminal comes from its own devpts
 * instance (mounted with newinstance), as runc and crun do it, so that `tty`
 * names a /dev/pts/N that exists in the container. The controlling side goes
 * to the monitor, which relays it to the user's terminal, a log, or a console
 * socket; the terminal side becomes stdin/stdout/stderr and the controlling
 * terminal of a new session.
 */
static void open_terminal(const struct plan *plan, int console_fd) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail(errno, "open /dev/ptmx for the container's terminal");
    int unlock = 0, number = -1;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) fail(errno, "unlock the container's terminal (TIOCSPTLCK)");
    if (ioctl(master, TIOCGPTN, &number) < 0) fail(errno, "number of the container's terminal (TIOCGPTN)");
    /* Through the controlling side rather than by name: nothing in the
     * container can put another file at /dev/pts/N in between (Linux 4.13+). */
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0 && (errno == EINVAL || errno == ENOTTY)) {
        char name[32];
        snprintf(name, sizeof name, "/dev/pts/%d", number);
        slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    }
    if (slave < 0) fail(errno, "open the container's terminal /dev/pts/%d", number);
    step("terminal /dev/pts/%d (%u rows, %u columns)", number, plan->proc.console_rows, plan->proc.console_cols);
    if (plan->proc.console_rows && plan->proc.console_cols) {
        struct winsize ws = { (unsigned short)plan->proc.console_rows, (unsigned short)plan->proc.console_cols, 0, 0 };
        if (ioctl(slave, TIOCSWINSZ, &ws) < 0) fail(errno, "set the size of the container's terminal");
    }
    /* The process's user owns its terminal, as after a login; an id the
     * namespace does not map (single mapping) leaves it to root. */
    if (fchown(slave, (uid_t)plan->proc.uid, (gid_t)plan->proc.gid) < 0 && errno != EINVAL && errno != EPERM)
        fail(errno, "chown the container's terminal /dev/pts/%d", number);
    if (send_fd(console_fd, master, "/dev/ptmx") < 0) fail(errno, "send the terminal to the monitor");
    close(master);
    close(console_fd);
    if (setsid() < 0) fail(errno, "setsid");
    if (ioctl(slave, TIOCSCTTY, 0) < 0) fail(errno, "make /dev/pts/%d the controlling terminal (TIOCSCTTY)", number);
    for (int fd = 0; fd < 3; fd++) redirect(slave, fd);
    if (slave > 2) close(slave);
}

static _Noreturn void run_container(const struct container_args *a) {
    const struct plan *plan = a->plan;
    g.role = ROLE_CONTAINER;
    g.n_kill = 0;
    reset_signals(a->original_mask);
    die_with_parent(a->parent_pidfd);

    int start_fifo = a->start_fifo; /* opened by the monitor, on the host */
    close_port_listeners(plan); /* the setup process's: they would close at execve anyway */

    if (a->own_mount_ns) {
        /* A copy of the setup process's mount namespace: pivot_root below then
         * changes only the container's view, not the mount daemons'. */
        step("unshare(CLONE_NEWNS) for the container process");
        if (unshare(CLONE_NEWNS) < 0) fail(errno, "unshare(CLONE_NEWNS) for the container process");
    }
    if (plan->proc.has_oom) {
        /* before the mounts: /proc is still the host's here */
        char value[32];
        snprintf(value, sizeof value, "%ld", plan->proc.oom_score_adj);
        step("oom_score_adj %s", value);
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, value, strlen(value)) < 0) fail(errno, "write /proc/self/oom_score_adj (%s)", value);
        close(fd);
    }

    struct opctx ctx = { .rootfd = -1, .n_daemons = 0, .self_pidfd = -1 };
    run_ops(&ctx, plan->inner, plan->n_inner, a->original_mask);
    close_fd(&ctx.rootfd);

    if (plan->proc.terminal) open_terminal(plan, a->console_fd);
    for (size_t i = 0; i < plan->proc.n_rlimits; i++) {
        const struct rlimit_entry *rl = &plan->proc.rlimits[i];
        struct rlimit lim = { (rlim_t)rl->soft, (rlim_t)rl->hard };
        step("setrlimit %d soft %llu hard %llu", rl->resource, rl->soft, rl->hard);
        if (setrlimit(rl->resource, &lim) < 0) fail(errno, "setrlimit %d (soft %llu, hard %llu)", rl->resource, rl->soft, rl->hard);
    }
    /* Without no_new_privs the filter can only be loaded with CAP_SYS_ADMIN, so before the user changes. */
    if (plan->proc.seccomp && !plan->proc.no_new_privs) load_seccomp(plan);

    if (plan->proc.has_caps) {
        step("capabilities: bounding %#llx", plan->proc.caps.bounding);
        apply_bounding_set(&plan->proc.caps, a->last_cap);
        if (prctl(PR_SET_KEEPCAPS, 1) < 0) fail(errno, "prctl(PR_SET_KEEPCAPS)");
    }
    step("setgroups [%zu groups], setresgid %lu, setresuid %lu", plan->proc.n_gids, plan->proc.gid, plan->proc.uid);
    if (setgroups(plan->proc.n_gids, plan->proc.gids) < 0) {
        /* With setgroups denied (single id mapping) an empty list is what we have anyway. */
        if (!(errno == EPERM && plan->proc.n_gids == 0)) fail(errno, "setgroups (%zu groups)", plan->proc.n_gids);
    }
    if (setresgid((gid_t)plan->proc.gid, (gid_t)plan->proc.gid, (gid_t)plan->proc.gid) < 0) fail(errno, "setgid %lu", plan->proc.gid);
    if (setresuid((uid_t)plan->proc.uid, (uid_t)plan->proc.uid, (uid_t)plan->proc.uid) < 0) fail(errno, "setuid %lu", plan->proc.uid);
    die_with_parent(a->parent_pidfd); /* the credential change cleared it */

    step("chdir %s", plan->proc.cwd);
    if (chdir(plan->proc.cwd) < 0) fail(errno, "chdir to the working directory %s", plan->proc.cwd);

    if (plan->proc.has_caps) {
        const struct caps *c = &plan->proc.caps;
        step("capabilities: effective %#llx permitted %#llx inheritable %#llx ambient %#llx", c->effective, c->permitted, c->inheritable, c->ambient);
        apply_capabilities(c, a->last_cap);
    }
    if (plan->proc.no_new_privs) {
        step("prctl(PR_SET_NO_NEW_PRIVS)");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    }
    char resolved[PATH_MAX];
    const char *path = find_executable(plan, resolved, sizeof resolved);
    if (plan->proc.umask >= 0) umask((mode_t)plan->proc.umask);
    /* Descriptors we did not mean to pass (inherited by nook itself) close at execve. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (plan->mon.mode == MONITOR_HANDOFF) {
        /* The monitor and the setup process go away once we are ready: from
         * here on we belong to the caller's subreaper (conmon, a shim) or init. */
        step("handoff: no parent-death signal");
        if (prctl(PR_SET_PDEATHSIG, 0) < 0) fail(errno, "prctl(PR_SET_PDEATHSIG, 0)");
    }
    if (plan->hold && start_fifo >= 0) {
        /* OCI create/start: the process that created us exits; `start` writes
         * one byte into the FIFO (opening it fails with ENXIO once we are gone). */
        step("hold: waiting for a byte in %s", plan->start_fifo);
        write_all(g.exec_fd, "H", 1);
        close(PLAN_FD);
        close_fd(&g.status_fd); /* nook must see the status pipe's end when it leaves */
        char go;
        ssize_t n;
        for (;;) {
            struct pollfd pfd = { start_fifo, POLLIN, 0 };
            if (poll(&pfd, 1, -1) < 0 && errno == EINTR) continue;
            do n = read(start_fifo, &go, 1);
            while (n < 0 && errno == EINTR);
            if (n < 0 && errno == EAGAIN) continue;
            break;
        }
        if (n != 1) fail_with(EXIT_INTERNAL, n < 0 ? errno : 0, "the start FIFO was closed without a byte", "hold before execve");
        close(start_fifo);
    } else if (plan->hold) {
        /* Ready: the monitor reports "created"; nook attaches what needs the
         * pid (network, cgroup) and then lets us go with one byte. */
        step("hold: waiting for the control byte");
        write_all(g.exec_fd, "H", 1);
        char go;
        ssize_t n;
        do n = read(PLAN_FD, &go, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) fail_with(EXIT_INTERNAL, n < 0 ? errno : 0, "nook closed the control fd before starting the container", "hold before execve");
        close(PLAN_FD);
    }
    if (plan->proc.seccomp && plan->proc.no_new_privs) load_seccomp(plan);
    step("execve %s", path);
    execve(path, plan->proc.args.v, plan->proc.env.v);

    int err = errno;
    char msg[PATH_MAX + 64], what[PATH_MAX + 16];
    snprintf(what, sizeof what, "execve %s", path);
    if (err == ENOENT || err == ENOTDIR) {
        snprintf(msg, sizeof msg, "\"%s\": no such file or directory", path);
        fail_with(EXIT_NOT_FOUND, err, msg, what);
    }
    fail_with(EXIT_CANNOT_INVOKE, err, NULL, what);
}

/* ------------------------------------------------------------------------ */
/* Published TCP ports: rootlesskit's "builtin" port driver, in the executor  */
/* ------------------------------------------------------------------------ */

/*
 * The monitor binds each port in the host's network namespace before the
 * setup process leaves it (a socket stays in the namespace it was made in),
 * so a taken port fails the start before anything runs. The setup process
 * inherits the listeners; once the container runs, it accepts, connects to
 * the container's address from inside the container's network namespace
 * (so the server sees the container's own address as the client's, as with
 * podman's rootlessport), and relays both ways with splice() through a pipe:
 * the bytes never leave the kernel, and never cross slirp4netns.
 */

static void open_port_listeners(struct plan *plan) {
    for (size_t i = 0; i < plan->n_forwards; i++) {
        struct port_forward *f = &plan->forwards[i];
        char what[96];
        snprintf(what, sizeof what, "cannot publish %s:%u/tcp", f->host_ip, f->host_port);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) fail(errno, "%s: socket", what);
        int one = 1;
        /* As slirp4netns and Node do: a port in TIME_WAIT is free, a listening one is not. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) fail(errno, "%s: SO_REUSEADDR", what);
        if (bind(fd, (struct sockaddr *)&f->host, sizeof f->host) < 0) {
            int err = errno;
            if (err == EADDRINUSE) fail_with(EXIT_INTERNAL, err, "the port is already in use on the host", what);
            if (err == EADDRNOTAVAIL) {
                char msg[96];
                snprintf(msg, sizeof msg, "%s is not an address of this host", f->host_ip);
                fail_with(EXIT_INTERNAL, err, msg, what);
            }
            if (err == EACCES) fail_with(EXIT_INTERNAL, err, "permission denied binding the port", what);
            fail(err, "%s", what);
        }
        if (listen(fd, SOMAXCONN) < 0) fail(errno, "%s: listen", what);
        f->listen_fd = fd;
        step("publish tcp %s:%u -> %s:%u: listening on the host (fd %d)", f->host_ip, f->host_port, f->container_ip, f->container_port, fd);
    }
}

static void close_port_listeners(const struct plan *plan) {
    for (size_t i = 0; i < plan->n_forwards; i++) close_fd(&plan->forwards[i].listen_fd);
}

/* One direction of a connection: src -> pipe -> dst. */
struct relay_half {
    int pipe[2];
    size_t capacity; /* the pipe's size: what one splice may move */
    size_t queued;   /* bytes in the pipe */
    bool eof;        /* src has nothing more */
    bool shut;       /* shutdown(dst, SHUT_WR) done */
};

struct relay {
    int host;  /* accepted on the host */
    int inner; /* connected in the container's network namespace */
    bool connecting;
    struct relay_half up;   /* host -> inner */
    struct relay_half down; /* inner -> host */
};

struct forwarder {
    struct relay **relays;
    size_t n, cap;
    bool accepting;         /* the container runs */
    long long paused_until; /* out of descriptors: accept again after this */
};

/*
 * A pipe starts at the kernel's default, 64 KiB. A direction that fills it in
 * one splice is a bulk transfer: its pipe grows to 1 MiB (as Go's splice,
 * hence podman's rootlessport, does for every pipe), which moves the same
 * bytes with a tenth of the system calls and ~40 % less of the relay's CPU
 * time. Pipe pages count against the user's pipe-user-pages-soft (64 MiB by
 * default, for all the user's pipes), so only a few pipes per container grow.
 */
#define RELAY_PIPE_BYTES 65536
#define RELAY_BIG_PIPE_BYTES (1 << 20)
#define RELAY_MAX_BIG_PIPES 4
#define RELAY_BURST_BYTES (4 << 20) /* then poll again (level-triggered: at once if there is more) */
static int relay_big_pipes; /* this setup process's grown pipes */

static void relay_close(struct relay *r, bool reset) {
    relay_big_pipes -= (r->up.capacity > RELAY_PIPE_BYTES) + (r->down.capacity > RELAY_PIPE_BYTES);
    if (reset) {
        /* an error on one side: the other gets a reset too, not a clean end */
        struct linger lg = { 1, 0 };
        setsockopt(r->host, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        setsockopt(r->inner, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close_fd(&r->host);
    close_fd(&r->inner);
    close_fd(&r->up.pipe[0]);
    close_fd(&r->up.pipe[1]);
    close_fd(&r->down.pipe[0]);
    close_fd(&r->down.pipe[1]);
    free(r);
}

/* Moves what it can from src to dst without blocking, up to a burst so that
 * one busy connection cannot starve the others; false: the connection failed. */
static bool relay_pump(struct relay_half *h, int src, int dst) {
    for (size_t moved = 0;;) {
        if (moved >= RELAY_BURST_BYTES) return true;
        if (h->queued > 0) {
            ssize_t n = splice(h->pipe[0], NULL, dst, NULL, h->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return true; /* dst is full: POLLOUT brings us back */
            if (n <= 0) return false;
            h->queued -= (size_t)n;
            moved += (size_t)n;
            continue;
        }
        if (h->eof) break;
        /* Only into an empty pipe: splice's EAGAIN then always means "src has nothing". */
        ssize_t n = splice(src, NULL, h->pipe[1], NULL, h->capacity, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return true;
        if (n < 0) return false;
        if (n == 0) h->eof = true;
        h->queued += (size_t)n;
        if ((size_t)n == h->capacity && h->capacity < RELAY_BIG_PIPE_BYTES && relay_big_pipes < RELAY_MAX_BIG_PIPES) {
            /* refused (the user's pipe pages are short): the pipe keeps its size */
            if (fcntl(h->pipe[1], F_SETPIPE_SZ, RELAY_BIG_PIPE_BYTES) >= RELAY_BIG_PIPE_BYTES) {
                h->capacity = RELAY_BIG_PIPE_BYTES;
                relay_big_pipes++;
            }
        }
    }
    /* here src has ended and everything it sent is delivered */
    if (!h->shut) {
        /* half-close: the peer sees the end of this direction, the other goes on */
        shutdown(dst, SHUT_WR);
        h->shut = true;
    }
    return true;
}

static void relay_add(struct forwarder *fw, struct relay *r) {
    if (fw->n == fw->cap) {
        size_t cap = fw->cap ? fw->cap * 2 : 16;
        struct relay **grown = realloc(fw->relays, cap * sizeof *grown);
        if (!grown) {
            relay_close(r, true);
            return;
        }
        fw->relays = grown;
        fw->cap = cap;
    }
    fw->relays[fw->n++] = r;
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A new client on the host: connect to the container (non-blocking); a refusal closes the client. */
static void relay_start(struct forwarder *fw, const struct port_forward *f, int client) {
    struct relay *r = calloc(1, sizeof *r);
    if (!r) {
        close(client);
        return;
    }
    r->host = client;
    r->inner = r->up.pipe[0] = r->up.pipe[1] = r->down.pipe[0] = r->down.pipe[1] = -1;
    r->up.capacity = r->down.capacity = RELAY_PIPE_BYTES;
    r->inner = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->inner < 0 || pipe2(r->up.pipe, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(r->down.pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        relay_close(r, true);
        return;
    }
    set_nodelay(r->host);
    set_nodelay(r->inner);
    int rc;
    do rc = connect(r->inner, (const struct sockaddr *)&f->container, sizeof f->container);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
        relay_close(r, false); /* nothing listens inside (ECONNREFUSED), or no route yet */
        return;
    }
    r->connecting = rc < 0;
    relay_add(fw, r);
}

static void accept_clients(struct forwarder *fw, const struct port_forward *f) {
    for (int i = 0; i < 64; i++) {
        int client = accept4(f->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            /* out of descriptors or memory: leave the clients in the backlog for a moment */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) fw->paused_until = now_ms() + 100;
            return;
        }
        relay_start(fw, f, client);
    }
}

/* What a relay waits for on each of its sockets. */
static short relay_events(const struct relay *r, bool host_side) {
    if (r->connecting) return host_side ? 0 : POLLOUT;
    const struct relay_half *reads = host_side ? &r->up : &r->down;   /* host_side reads up */
    const struct relay_half *writes = host_side ? &r->down : &r->up;  /* and writes down */
    short ev = 0;
    if (reads->queued == 0 && !reads->eof) ev |= POLLIN;
    if (writes->queued > 0) ev |= POLLOUT;
    return ev;
}

/* Handles poll's answer for one relay; false: it is finished (or failed) and must be closed. */
static bool relay_step(struct relay *r, short hr, short ir, bool *reset) {
    *reset = false;
    if (r->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(r->inner, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) return false; /* refused inside: the client sees its connection closed */
        r->connecting = false;
        return true; /* the next poll says which side has something */
    }
    /* only the directions poll woke: a bulk transfer one way costs no idle splice the other way */
    const short gone = POLLERR | POLLHUP;
    bool up = (hr & (POLLIN | gone)) || (ir & (POLLOUT | gone));
    bool down = (ir & (POLLIN | gone)) || (hr & (POLLOUT | gone));
    if ((up && !relay_pump(&r->up, r->host, r->inner)) || (down && !relay_pump(&r->down, r->inner, r->host))) {
        *reset = true;
        return false;
    }
    return !(r->up.shut && r->down.shut);
}

/*
 * The setup process's wait for the container while it forwards ports: a
 * poll loop over SIGCHLD (a signalfd), the monitor's word that the container
 * runs, the listeners and every connection. Returns the container's status.
 */
static int forward_until_exit(struct plan *plan, pid_t child, int run_fd, pid_t *daemons, size_t n_daemons) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    /* blocked before the first waitpid below: an exit after it is then read from the signalfd */
    sigprocmask(SIG_BLOCK, &chld, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone while we write: EPIPE, not death */
    int sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0) _exit(EXIT_INTERNAL);
    /* A relay needs six descriptors: take what the hard limit allows. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    struct forwarder fw = { NULL, 0, 0, false, 0 };
    struct pollfd *fds = NULL;
    size_t fds_cap = 0;
    int status = 0;
    for (;;) {
        int status_now;
        pid_t done;
        bool exited = false;
        while ((done = waitpid(-1, &status_now, WNOHANG)) > 0) {
            if (done == child) {
                status = status_now;
                exited = true;
            }
            for (size_t i = 0; i < n_daemons; i++) {
                if (daemons[i] == done) daemons[i] = 0; /* a mount daemon ended early: the container will notice */
            }
        }
        if (exited) break;

        size_t base = 2 + plan->n_forwards, need = base + 2 * fw.n;
        if (need > fds_cap) {
            size_t cap = need * 2;
            struct pollfd *grown = realloc(fds, cap * sizeof *grown);
            if (!grown) _exit(EXIT_INTERNAL);
            fds = grown;
            fds_cap = cap;
        }
        bool listen_now = fw.accepting && now_ms() >= fw.paused_until;
        fds[0] = (struct pollfd){ sig_fd, POLLIN, 0 };
        fds[1] = (struct pollfd){ run_fd, POLLIN, 0 };
        for (size_t i = 0; i < plan->n_forwards; i++) fds[2 + i] = (struct pollfd){ listen_now ? plan->forwards[i].listen_fd : -1, POLLIN, 0 };
        for (size_t i = 0; i < fw.n; i++) {
            short he = relay_events(fw.relays[i], true), ie = relay_events(fw.relays[i], false);
            /* an fd with nothing to wait for stays out: a hung-up socket would wake us for ever */
            fds[base + 2 * i] = (struct pollfd){ he ? fw.relays[i]->host : -1, he, 0 };
            fds[base + 2 * i + 1] = (struct pollfd){ ie ? fw.relays[i]->inner : -1, ie, 0 };
        }
        int timeout = fw.accepting && !listen_now ? (int)(fw.paused_until - now_ms()) + 1 : -1;
        int ready = poll(fds, need, timeout);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) _exit(EXIT_INTERNAL);

        if (fds[0].revents) {
            struct signalfd_siginfo si;
            while (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {}
        }
        if (fds[1].revents) {
            char c = 0;
            ssize_t n = read(run_fd, &c, 1);
            if (!(n < 0 && errno == EINTR)) {
                fw.accepting = n == 1 && c == 'R';
                close_fd(&run_fd);
            }
        }
        /* the relays first, by the indices poll saw; then new clients */
        size_t kept = 0, n_before = fw.n;
        for (size_t i = 0; i < n_before; i++) {
            struct relay *r = fw.relays[i];
            short hr = fds[base + 2 * i].revents, ir = fds[base + 2 * i + 1].revents;
            bool reset = false;
            if ((hr || ir) && !relay_step(r, hr, ir, &reset)) {
                relay_close(r, reset);
                continue;
            }
            fw.relays[kept++] = r;
        }
        fw.n = kept;
        for (size_t i = 0; i < plan->n_forwards; i++) {
            if (fds[2 + i].revents) accept_clients(&fw, &plan->forwards[i]);
        }
    }
    for (size_t i = 0; i < fw.n; i++) relay_close(fw.relays[i], false);
    free(fw.relays);
    free(fds);
    close(sig_fd);
    close_fd(&run_fd);
    close_port_listeners(plan);
    return status;
}

/* ------------------------------------------------------------------------ */
/* The setup process: namespaces, outerOps, the container's parent            */
/* ------------------------------------------------------------------------ */

/* Messages from the setup process to the monitor: whole 8-byte records on a
 * pipe, so a read never sees half of one. */
struct report {
    int32_t kind;  /* 'U' user namespace created, 'P' container pid, 'O' the OOM killer struck, 'X' container wait status */
    int32_t value;
};

struct pipes {
    int report[2]; /* setup -> monitor */
    int go[2];     /* monitor -> setup: id maps written */
    int exec[2];   /* container -> monitor: 'E' on failure, EOF on execve (CLOEXEC) */
    int out[2], err[2]; /* detached: the container's stdout/stderr */
    int null_fd;        /* detached: the container's stdin */
    int console[2];     /* container -> monitor: its terminal's controlling side (socketpair) */
    int start_fifo;     /* plan.startFifo, open for reading: the container waits on it at the hold */
    int run[2];         /* monitor -> setup, with port forwards: 'R' once the container runs */
};

/* The memory.events file of this process's cgroup (cgroup v2), or -1. */
static int open_memory_events(void) {
    char buf[4096], path[PATH_MAX];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *line = buf;
    while (line && strncmp(line, "0::", 3) != 0) {
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (!line) return -1;
    line[3 + strcspn(line + 3, "\n")] = '\0';
    if (snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.events", line + 3) >= (int)sizeof path) return -1;
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* The "oom_kill N" count of a memory.events file, or -1. */
static long oom_kills(int fd) {
    char buf[512];
    if (fd < 0) return -1;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char *at = strstr(buf, "oom_kill ");
    return at ? atol(at + 9) : -1;
}

static void send_report(int fd, int kind, int value) {
    struct report r = { kind, value };
    write_all(fd, (const char *)&r, sizeof r);
}

static void set_ids_to_root(void) {
    /* Be root in the namespace when 0 is mapped (keep-id maps the user elsewhere):
     * mount daemons started by outerOps keep their capabilities across execve only as uid 0. */
    if (setresgid(0, 0, 0) == 0 && setresuid(0, 0, 0) == 0) step("setresuid 0, setresgid 0");
    else if (errno != EINVAL) fail(errno, "become root in the user namespace");
}

static void stop_daemons(struct opctx *ctx) {
    for (size_t i = 0; i < ctx->n_daemons; i++) {
        if (ctx->daemons[i] > 0) kill(ctx->daemons[i], SIGTERM); /* 0: it ended early (kill(0) would signal our group) */
    }
    long long deadline = now_ms() + DAEMON_STOP_TIMEOUT_MS;
    size_t left = ctx->n_daemons;
    while (left > 0) {
        left = 0;
        for (size_t i = 0; i < ctx->n_daemons; i++) {
            if (ctx->daemons[i] <= 0) continue;
            if (waitpid(ctx->daemons[i], NULL, WNOHANG) == ctx->daemons[i]) ctx->daemons[i] = 0;
            else left++;
        }
        if (left == 0) break;
        if (now_ms() > deadline) {
            for (size_t i = 0; i < ctx->n_daemons; i++) {
                if (ctx->daemons[i] > 0) {
                    kill(ctx->daemons[i], SIGKILL);
                    waitpid(ctx->daemons[i], NULL, 0);
                }
            }
            break;
        }
        sleep_ms(5);
    }
    ctx->n_daemons = 0;
}

static _Noreturn void run_setup(struct plan *plan, struct pipes *p, const sigset_t *original_mask, int monitor_pidfd) {
    g.role = ROLE_SETUP;
    g.n_kill = 0;
    /* Signals for the container reach it from the monitor; a Ctrl-C on the
     * terminal must not kill this process (and so the container with it). */
    sigprocmask(SIG_SETMASK, original_mask, NULL);
    for (size_t i = 0; i < N_FORWARDED; i++) signal(forwarded_signals[i], SIG_IGN);
    die_with_parent(monitor_pidfd);
    close_fd(&p->report[0]);
    close_fd(&p->go[1]);
    close_fd(&p->exec[0]);
    close_fd(&p->console[0]);
    close_fd(&p->run[1]);
    if (plan->mon.mode == MONITOR_DETACHED) {
        redirect(p->null_fd, 0);
        redirect(p->out[1], 1);
        redirect(p->err[1], 2);
        close_fd(&p->out[0]);
        close_fd(&p->err[0]);
        close_fd(&p->out[1]);
        close_fd(&p->err[1]);
        close_fd(&p->null_fd);
    }

    if (plan->join_cgroup) {
        step("join cgroup: write 0 to %s", plan->join_cgroup);
        int fd = open(plan->join_cgroup, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) < 0) fail(errno, "join the cgroup (%s)", plan->join_cgroup);
        close(fd);
    }
    if (plan->hold_setup) {
        /* nook places this process (e.g. asks systemd to move it into a new
         * scope) before any namespace exists, so that the cgroup namespace is
         * rooted at the container's cgroup; then it writes one byte. */
        step("hold before namespaces: waiting for nook to place pid %d", (int)getpid());
        struct line l = { .len = 0 };
        ln_raw(&l, "{\"type\":\"setup\",\"pid\":");
        ln_int(&l, getpid());
        ln_raw(&l, "}");
        status_send(&l);
        char go;
        ssize_t n;
        do n = read(PLAN_FD, &go, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) fail_with(EXIT_INTERNAL, n < 0 ? errno : 0, "nook closed the control fd before the namespaces were created", "hold before namespaces");
        if (!plan->hold) close(PLAN_FD);
    }
    /* Opened now, while the cgroup is the container's and visible: it is read
     * after the container's exit, when the process still keeps the cgroup alive. */
    int oom_fd = plan->watch_oom ? open_memory_events() : -1;
    long oom_before = oom_kills(oom_fd);
    if (plan->watch_oom && oom_fd < 0) step("watch oom: no memory.events for this process's cgroup");

    /* Open every namespace to join first: after setns(mnt) the paths mean something else. */
    int user_fd = -1;
    if (plan->user_mode == USER_JOIN) {
        user_fd = open(plan->user_path, O_RDONLY | O_CLOEXEC);
        if (user_fd < 0) fail(errno, "open user namespace %s", plan->user_path);
    }
    for (size_t i = 0; i < plan->n_ns; i++) {
        if (!plan->ns[i].path) continue;
        plan->ns[i].fd = open(plan->ns[i].path, O_RDONLY | O_CLOEXEC);
        if (plan->ns[i].fd < 0) fail(errno, "open %s namespace %s", plan->ns[i].name, plan->ns[i].path);
    }

    if (plan->user_mode == USER_NEW) {
        step("unshare(CLONE_NEWUSER)");
        if (unshare(CLONE_NEWUSER) < 0) fail(errno, "unshare(CLONE_NEWUSER)");
        send_report(p->report[1], 'U', 0);
        char answer = 0;
        ssize_t n;
        do n = read(p->go[0], &answer, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1 || answer != 'G') _exit(EXIT_INTERNAL); /* the monitor reported the failure */
        set_ids_to_root();
    } else if (plan->user_mode == USER_JOIN) {
        step("setns user %s", plan->user_path);
        if (setns(user_fd, CLONE_NEWUSER) < 0) fail(errno, "setns into user namespace %s", plan->user_path);
        close(user_fd);
        set_ids_to_root();
    }
    close_fd(&p->go[0]);
    die_with_parent(monitor_pidfd);

    /* The pid namespace only applies to children: it comes last, right before
     * the container's fork, so that mount daemons are not its PID 1. */
    bool new_mount_ns = false;
    struct ns_entry *pid_ns = NULL;
    for (size_t i = 0; i < plan->n_ns; i++) {
        struct ns_entry *ns = &plan->ns[i];
        if (ns->flag == CLONE_NEWPID) {
            pid_ns = ns;
            continue;
        }
        if (ns->path) {
            step("setns %s %s", ns->name, ns->path);
            if (setns(ns->fd, ns->flag) < 0) fail(errno, "setns into %s namespace %s", ns->name, ns->path);
            close_fd(&ns->fd);
        } else {
            step("unshare(CLONE_NEW%s)", ns->flag == CLONE_NEWNS ? "NS" : ns->flag == CLONE_NEWUTS ? "UTS" : ns->flag == CLONE_NEWIPC ? "IPC" : ns->flag == CLONE_NEWNET ? "NET" : "CGROUP");
            if (unshare(ns->flag) < 0) fail(errno, "unshare(%s namespace)", ns->name);
            if (ns->flag == CLONE_NEWNS) new_mount_ns = true;
        }
    }

    int self_pidfd = pidfd_open_self();
    if (self_pidfd < 0) fail(errno, "pidfd_open");
    struct opctx ctx = { .rootfd = -1, .n_daemons = 0, .self_pidfd = self_pidfd };
    run_ops(&ctx, plan->outer, plan->n_outer, original_mask);
    close_fd(&ctx.rootfd);

    if (pid_ns) {
        if (pid_ns->path) {
            step("setns pid %s", pid_ns->path);
            if (setns(pid_ns->fd, CLONE_NEWPID) < 0) fail(errno, "setns into pid namespace %s", pid_ns->path);
            close_fd(&pid_ns->fd);
        } else {
            step("unshare(CLONE_NEWPID)");
            if (unshare(CLONE_NEWPID) < 0) fail(errno, "unshare(CLONE_NEWPID)");
        }
    }

    struct container_args ca = { plan, original_mask, self_pidfd, new_mount_ns, last_cap(), p->console[1], p->start_fifo };
    pid_t child = fork();
    if (child < 0) fail(errno, "fork the container process");
    if (child == 0) {
        close_fd(&p->report[1]);
        g.exec_fd = p->exec[1];
        run_container(&ca);
    }
    remember_child(child);
    send_report(p->report[1], 'P', child);
    if (plan->n_forwards)
        step("forward %zu published tcp port%s with splice() from this network namespace, once the container runs", plan->n_forwards,
             plan->n_forwards > 1 ? "s" : "");
    /* From here on the container reports for itself; the monitor sees EOF on
     * the exec pipe once it has run execve, and the status fd closes when the
     * monitor closes it (detached) since nobody else holds it. */
    close_fd(&p->exec[1]);
    close_fd(&p->console[1]);
    close_fd(&p->start_fifo);
    close_fd(&g.status_fd);
    if (plan->hold) close(PLAN_FD);
    g.trace = false;

    int status = 0;
    if (plan->mon.mode == MONITOR_HANDOFF) {
        /* The container is handed to whoever reaps orphans (conmon, a shim,
         * init): learn its status without reaping it (WNOWAIT), so that the
         * monitor can report a failed start, and wait to be killed. */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        while (waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
        status = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : W_EXITCODE(0, info.si_status);
        send_report(p->report[1], 'X', status);
        for (;;) pause();
    }
    if (plan->n_forwards) status = forward_until_exit(plan, child, p->run[0], ctx.daemons, ctx.n_daemons);
    else for (;;) {
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0 && errno == EINTR) continue;
        if (done < 0) _exit(EXIT_INTERNAL);
        if (done == child) break;
        /* A mount daemon ended early: the container will notice; keep waiting. */
        for (size_t i = 0; i < ctx.n_daemons; i++) {
            if (ctx.daemons[i] == done) ctx.daemons[i] = 0;
        }
    }
    if (oom_fd >= 0 && oom_kills(oom_fd) > oom_before) send_report(p->report[1], 'O', 1);
    send_report(p->report[1], 'X', status);
    stop_daemons(&ctx);
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The monitor                                                               */
/* ------------------------------------------------------------------------ */

static void format_idmap(const struct idmap_entry *m, size_t n, char *out, size_t size) {
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, size - len, "%s%lu %lu %lu", i ? " / " : "", m[i].inside, m[i].outside, m[i].count);
        if (w < 0 || (size_t)w >= size - len) break;
        len += (size_t)w;
    }
}

/*
 * newuidmap/newgidmap PID inside outside count ...: run here, outside the new
 * namespace. Started by spawn_map_helper and waited for by finish_map_helper,
 * so that the two run at the same time (~1 ms each, on every start).
 */
struct map_helper {
    const char *helper;
    char what[128];
    pid_t child;
    int err_fd;
    char **argv;
    char *numbers;
};

static void spawn_map_helper(struct map_helper *h, pid_t pid, const struct idmap_entry *m, size_t n) {
    h->argv = xcalloc(2 + 3 * n + 1, sizeof(char *));
    h->numbers = xcalloc(1 + 3 * n, 24);
    size_t k = 0;
    h->argv[k++] = (char *)h->helper;
    snprintf(h->numbers, 24, "%d", (int)pid);
    h->argv[k++] = h->numbers;
    for (size_t i = 0; i < n; i++) {
        unsigned long v[3] = { m[i].inside, m[i].outside, m[i].count };
        for (int j = 0; j < 3; j++) {
            char *slot = h->numbers + 24 * (1 + 3 * i + (size_t)j);
            snprintf(slot, 24, "%lu", v[j]);
            h->argv[k++] = slot;
        }
    }
    int errp[2];
    xpipe(errp, "helper stderr");
    h->child = fork();
    if (h->child < 0) fail(errno, "%s: fork", h->what);
    if (h->child == 0) {
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd >= 0) {
            dup2(null_fd, 0);
            dup2(null_fd, 1);
        }
        dup2(errp[1], 2);
        close_range(3, ~0U, 0);
        execv(h->helper, h->argv);
        dprintf(2, "cannot execute %s: %s\n", h->helper, strerror(errno));
        _exit(EXIT_NOT_FOUND);
    }
    close(errp[1]);
    h->err_fd = errp[0];
}

/* Waits for the helper; returns its error message (empty when it succeeded). */
static void finish_map_helper(struct map_helper *h, char *msg, size_t size) {
    int status = 0;
    msg[0] = '\0';
    while (waitpid(h->child, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char out[1024], how[64];
        read_helper_stderr(h->err_fd, false, out, sizeof out);
        describe_wait_status(status, how, sizeof how);
        snprintf(msg, size, "%s %s%s%s", h->helper, how, *out ? ": " : "", out);
    }
    close(h->err_fd);
    free(h->argv);
    free(h->numbers);
}

static void write_proc_file(pid_t pid, const char *name, const char *content) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(errno, "open %s", path);
    /* id maps must be written in a single write(2) */
    if (write(fd, content, strlen(content)) < 0) fail(errno, "write %s (%s)", path, content);
    close(fd);
}

static void write_id_maps(const struct plan *plan, pid_t pid) {
    char text[LINE_MAX_LEN / 2], lines[LINE_MAX_LEN];
    const struct { const char *name; const struct idmap_entry *m; size_t n; const char *helper; } maps[2] = {
        { "uid_map", plan->uid_map, plan->n_uid_map, plan->uid_helper },
        { "gid_map", plan->gid_map, plan->n_gid_map, plan->gid_helper },
    };
    struct map_helper helpers[2];
    size_t n_helpers = 0;
    if (plan->setgroups_deny) {
        step("setgroups: deny");
        write_proc_file(pid, "setgroups", "deny");
    }
    for (int i = 0; i < 2; i++) {
        format_idmap(maps[i].m, maps[i].n, text, sizeof text);
        if (maps[i].helper) {
            step("%s: %s (%s)", maps[i].name, text, maps[i].helper);
            struct map_helper *h = &helpers[n_helpers++];
            h->helper = maps[i].helper;
            snprintf(h->what, sizeof h->what, "write %s with %s", maps[i].name, strrchr(maps[i].helper, '/') ? strrchr(maps[i].helper, '/') + 1 : maps[i].helper);
            spawn_map_helper(h, pid, maps[i].m, maps[i].n);
        } else {
            step("%s: %s", maps[i].name, text);
            size_t len = 0;
            lines[0] = '\0';
            for (size_t j = 0; j < maps[i].n && len < sizeof lines; j++) {
                int w = snprintf(lines + len, sizeof lines - len, "%lu %lu %lu\n", maps[i].m[j].inside, maps[i].m[j].outside, maps[i].m[j].count);
                if (w > 0) len += (size_t)w;
            }
            write_proc_file(pid, maps[i].name, lines);
        }
    }
    /* Both are waited for before either failure is reported: no helper is left running. */
    char msgs[2][1200];
    for (size_t i = 0; i < n_helpers; i++) finish_map_helper(&helpers[i], msgs[i], sizeof msgs[i]);
    for (size_t i = 0; i < n_helpers; i++) {
        if (msgs[i][0]) fail_with(EXIT_INTERNAL, 0, msgs[i], helpers[i].what);
    }
}

/*
 * k8s-file log format, as podman's: "<RFC 3339 nano time> stdout F <line>".
 * A line the container has not finished yet is written as a "P" (partial)
 * record; readers join P records up to the next F. No buffering here, so the
 * monitor stays small.
 */
static void log_chunk(int log_fd, const char *stream, const char *data, size_t n) {
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t len = nl ? (size_t)(nl - data) : n;
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        char prefix[80];
        int plen = snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.%09ld+00:00 %s %c ", tm.tm_year + 1900,
                            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec, stream, nl ? 'F' : 'P');
        struct iovec iov[3] = { { prefix, (size_t)plen }, { (void *)data, len }, { "\n", 1 } };
        ssize_t done;
        /* a short write to a regular file means the disk is full: nothing better to do */
        do done = writev(log_fd, iov, 3);
        while (done < 0 && errno == EINTR);
        data += len + (nl ? 1 : 0);
        n -= len + (nl ? 1 : 0);
    }
}

/* Returns false at EOF. */
static bool pump_log(int *fd, int log_fd, const char *stream) {
    static char buf[8192];
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
        close_fd(fd);
        return false;
    }
    if (log_fd >= 0) log_chunk(log_fd, stream, buf, (size_t)n);
    return true;
}

static void run_on_exit(const struct plan *plan, const sigset_t *original_mask) {
    if (plan->mon.on_exit.n == 0) return;
    pid_t pid = fork();
    if (pid != 0) return; /* not waited for: the monitor's exit must not wait on cleanup */
    setsid();
    reset_signals(original_mask);
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
    }
    close_range(3, ~0U, 0);
    execvp(plan->mon.on_exit.v[0], plan->mon.on_exit.v);
    _exit(EXIT_NOT_FOUND);
}

/* The container's terminal as the monitor holds it (process.terminal). */
struct terminal_relay {
    int master;            /* controlling side: -1 before it arrives, once closed, or when passed on */
    bool received;
    bool to_log;           /* detached: its output goes to the log */
    bool relay_stdin;      /* foreground -it: our stdin goes to it */
    bool stdin_is_tty;
    char pending[4096];    /* input the terminal could not take yet */
    size_t pending_off, pending_len;
    char last_input;
};

static bool relay_has_pending(const struct terminal_relay *t) {
    return t->pending_off < t->pending_len;
}

/* The user's terminal size onto the container's (at start and on SIGWINCH);
 * the kernel then signals the container's foreground process group. */
static void copy_window_size(int master) {
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) < 0 && ioctl(1, TIOCGWINSZ, &ws) < 0) return;
    if (ws.ws_row == 0 || ws.ws_col == 0) return; /* a terminal that does not know its size (a pty of script(1)...) */
    ioctl(master, TIOCSWINSZ, &ws);
}

/* Raw: every key (^C, ^Z, ^D...) goes to the container's terminal, whose own
 * line discipline gives it meaning there. Restored by restore_user_terminal. */
static void make_user_terminal_raw(void) {
    struct termios attrs;
    if (tcgetattr(0, &attrs) < 0) return;
    user_terminal.attrs = attrs;
    user_terminal.saved = true;
    cfmakeraw(&attrs);
    if (tcsetattr(0, TCSADRAIN, &attrs) < 0) user_terminal.saved = false;
}

/* OCI --console-socket: the caller (conmon, containerd-shim) holds the terminal. */
static void send_to_console_socket(const char *path, int master) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) fail(ENAMETOOLONG, "connect to the console socket %s", path);
    memcpy(addr.sun_path, path, strlen(path));
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) fail(errno, "create a socket for the console socket %s", path);
    int rc;
    do rc = connect(sock, (struct sockaddr *)&addr, sizeof addr);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) fail(errno, "connect to the console socket %s", path);
    if (send_fd(sock, master, "/dev/ptmx") < 0) fail(errno, "send the terminal to the console socket %s", path);
    close(sock);
}

static void terminal_arrived(const struct plan *plan, struct terminal_relay *t, int master) {
    t->received = true;
    if (plan->mon.console_socket) {
        step("terminal: controlling side sent to the console socket %s", plan->mon.console_socket);
        send_to_console_socket(plan->mon.console_socket, master);
        close(master);
        return;
    }
    if (fcntl(master, F_SETFL, O_NONBLOCK) < 0) fail(errno, "make the terminal non-blocking");
    t->master = master;
    if (plan->mon.mode == MONITOR_DETACHED) {
        t->to_log = true;
        return;
    }
    copy_window_size(master);
    if (plan->mon.terminal_stdin) {
        t->relay_stdin = true;
        t->stdin_is_tty = isatty(0);
        if (t->stdin_is_tty) make_user_terminal_raw();
    }
}

/* Writes what is pending without blocking: a program that does not read its
 * terminal must not stop the monitor (and with it the output and signals). */
static void relay_flush(struct terminal_relay *t) {
    while (relay_has_pending(t)) {
        ssize_t n = write(t->master, t->pending + t->pending_off, t->pending_len - t->pending_off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return; /* POLLOUT brings us back */
        if (n < 0) break;
        t->pending_off += (size_t)n;
    }
    t->pending_off = t->pending_len = 0;
}

static void relay_input(struct terminal_relay *t) {
    ssize_t n = read(0, t->pending, sizeof t->pending);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    t->pending_off = 0;
    if (n > 0) {
        t->pending_len = (size_t)n;
        t->last_input = t->pending[n - 1];
    } else {
        t->relay_stdin = false;
        t->pending_len = 0;
        if (n == 0 && !t->stdin_is_tty) {
            /* Piped input ended: say so as a typist would, with the EOF
             * character (twice after an unfinished line). */
            struct termios attrs;
            char eof = tcgetattr(t->master, &attrs) == 0 && attrs.c_cc[VEOF] ? (char)attrs.c_cc[VEOF] : 4;
            if (t->last_input && t->last_input != '\n') t->pending[t->pending_len++] = eof;
            t->pending[t->pending_len++] = eof;
        }
    }
    relay_flush(t);
}

static void write_out(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) { /* a descriptor shared with a non-blocking Node stream */
            struct pollfd pfd = { fd, POLLOUT, 0 };
            poll(&pfd, 1, 1000);
            continue;
        }
        if (n <= 0) return;
        data += n;
        len -= (size_t)n;
    }
}

static void relay_output(struct terminal_relay *t, int log_fd) {
    if (t->to_log) {
        pump_log(&t->master, log_fd, "stdout");
        return;
    }
    static char buf[8192];
    ssize_t n = read(t->master, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        /* EIO: every terminal-side descriptor is closed, the container is gone. */
        close_fd(&t->master);
        t->relay_stdin = false;
        return;
    }
    write_out(1, buf, (size_t)n);
}

/*
 * Handoff (OCI create, exec -d): the container is ready, or runs. Pass the
 * terminal on if it has not gone yet, then leave with the setup process, so
 * that the container is reparented to the caller's subreaper (conmon,
 * containerd-shim), which reaps it, or to init.
 */
static _Noreturn void hand_off(const struct plan *plan, struct terminal_relay *t, int *console_fd, pid_t setup) {
    if (plan->proc.terminal && !t->received && *console_fd >= 0) {
        /* it was sent before the container reported: this read does not wait */
        int master = recv_fd(*console_fd);
        if (master < 0) fail(errno ? errno : EPIPE, "receive the container's terminal");
        terminal_arrived(plan, t, master);
    }
    close_fd(&g.status_fd);
    kill(setup, SIGKILL);
    while (waitpid(setup, NULL, 0) < 0 && errno == EINTR) {}
    _exit(0);
}

static void report_pids(const char *type, pid_t container, pid_t monitor_pid) {
    struct line l = { .len = 0 };
    ln_raw(&l, "{\"type\":\"");
    ln_raw(&l, type);
    ln_raw(&l, "\",\"pid\":");
    ln_int(&l, container);
    ln_raw(&l, ",\"monitorPid\":");
    ln_int(&l, monitor_pid);
    ln_raw(&l, "}");
    status_send(&l);
}

static _Noreturn void run_monitor(struct plan *plan) {
    bool detached = plan->mon.mode == MONITOR_DETACHED;
    bool handoff = plan->mon.mode == MONITOR_HANDOFF;
    pid_t monitor_pid = getpid();
    /* -it: the user's terminal goes raw, so the monitor must outlive nook long
     * enough to restore it: a pidfd of nook instead of a parent-death SIGKILL. */
    bool raw_terminal = plan->proc.terminal && plan->mon.mode == MONITOR_FOREGROUND && !plan->mon.console_socket &&
                        plan->mon.terminal_stdin && isatty(0);
    int parent_fd = -1;

    if (plan->mon.die_with_parent) {
        pid_t parent = getppid();
        if (raw_terminal) {
            parent_fd = (int)syscall(SYS_pidfd_open, parent, 0);
            if (parent_fd < 0) fail(errno, "pidfd_open of nook");
        } else if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
            fail(errno, "prctl(PR_SET_PDEATHSIG)");
        }
        if (getppid() != parent) _exit(EXIT_INTERNAL);
    }
    struct pipes p = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, -1, { -1, -1 }, -1, { -1, -1 } };
    int log_fd = -1;
    if (detached) {
        if (setsid() < 0 && errno != EPERM) fail(errno, "setsid");
        int null_fd = open_dev_null(O_RDWR);
        redirect(null_fd, 0);
        redirect(null_fd, 1);
        redirect(null_fd, 2);
        p.null_fd = null_fd;
        xpipe(p.out, "stdout");
        xpipe(p.err, "stderr");
        if (plan->mon.log_path) {
            log_fd = open(plan->mon.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (log_fd < 0) fail(errno, "open the log file %s", plan->mon.log_path);
        }
    }
    /* Orphans of the container (when it has no pid namespace) come to us, not
     * to init. Not in handoff: the caller's subreaper takes the container. */
    if (!handoff && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) fail(errno, "prctl(PR_SET_CHILD_SUBREAPER)");

    /* Signals are read from a signalfd in the main loop: no handlers, no races. */
    sigset_t mask, original_mask;
    sigemptyset(&mask);
    for (size_t i = 0; i < N_FORWARDED; i++) sigaddset(&mask, forwarded_signals[i]);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, &original_mask) < 0) fail(errno, "sigprocmask");
    int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0) fail(errno, "signalfd");
    signal(SIGPIPE, SIG_IGN); /* nook may go away: writes then fail with EPIPE */

    xpipe(p.report, "report");
    xpipe(p.go, "sync");
    xpipe(p.exec, "exec");
    if (plan->proc.terminal && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.console) < 0) fail(errno, "socketpair for the terminal");
    if (plan->start_fifo) {
        /* Made and opened here, on the host: whatever the container's id
         * mappings, and before pivot_root hides the path. Non-blocking: an
         * open for reading would otherwise wait for a writer. */
        if (mkfifo(plan->start_fifo, 0600) < 0 && errno != EEXIST) fail(errno, "mkfifo %s", plan->start_fifo);
        p.start_fifo = open(plan->start_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (p.start_fifo < 0) fail(errno, "open the start FIFO %s", plan->start_fifo);
    }
    if (plan->n_forwards) {
        open_port_listeners(plan);
        xpipe(p.run, "run");
    }
    int self_pidfd = pidfd_open_self();
    if (self_pidfd < 0) fail(errno, "pidfd_open");

    pid_t setup = fork();
    if (setup < 0) fail(errno, "fork the setup process");
    if (setup == 0) {
        close(sig_fd);
        close_fd(&log_fd);
        close_fd(&parent_fd);
        run_setup(plan, &p, &original_mask, self_pidfd);
    }
    remember_child(setup);
    close(self_pidfd);
    if (plan->hold || plan->hold_setup) close(PLAN_FD); /* the setup process has its own copy */
    close_fd(&p.report[1]);
    close_fd(&p.go[0]);
    close_fd(&p.exec[1]);
    close_fd(&p.out[1]);
    close_fd(&p.err[1]);
    close_fd(&p.null_fd);
    close_fd(&p.console[1]);
    close_fd(&p.start_fifo);
    close_fd(&p.run[0]);
    /* The setup process holds the listeners now: the ports are free once it ends. */
    close_port_listeners(plan);

    struct terminal_relay term;
    memset(&term, 0, sizeof term);
    term.master = -1;
    pid_t container = 0;
    bool exec_failed = false, started = false, created = false, setup_done = false, have_status = false;
    bool oom_killed = false;
    int setup_status = 0, container_status = 0, interrupted_by = 0;

    enum { FD_SIG, FD_REPORT, FD_EXEC, FD_OUT, FD_ERR, FD_CONSOLE, FD_MASTER, FD_STDIN, FD_PARENT, N_FDS };
    while (!setup_done || p.report[0] >= 0 || p.exec[0] >= 0 || p.out[0] >= 0 || p.err[0] >= 0 || p.console[0] >= 0 ||
           term.master >= 0) {
        /* Once the setup process is gone, the container and its pid namespace
         * are too: drain what the pipes still hold and stop. */
        int timeout = setup_done ? 0 : -1;
        if (setup_done) term.pending_off = term.pending_len = 0;
        struct pollfd fds[N_FDS] = {
            [FD_SIG] = { sig_fd, POLLIN, 0 },
            [FD_REPORT] = { p.report[0], POLLIN, 0 },
            /* the container's pid ('P' on the report pipe) must be known first */
            [FD_EXEC] = { container > 0 || setup_done ? p.exec[0] : -1, POLLIN, 0 },
            [FD_OUT] = { p.out[0], POLLIN, 0 },
            [FD_ERR] = { p.err[0], POLLIN, 0 },
            [FD_CONSOLE] = { p.console[0], POLLIN, 0 },
            [FD_MASTER] = { term.master, (short)(POLLIN | (relay_has_pending(&term) ? POLLOUT : 0)), 0 },
            [FD_STDIN] = { term.relay_stdin && term.master >= 0 && !relay_has_pending(&term) && !setup_done ? 0 : -1, POLLIN, 0 },
            [FD_PARENT] = { parent_fd, POLLIN, 0 },
        };
        int ready = poll(fds, N_FDS, timeout);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) fail(errno, "poll");
        if (ready == 0) break;

        if (fds[FD_PARENT].revents) {
            /* nook was killed: put the user's terminal back, and end the container with it */
            restore_user_terminal();
            kill_children();
            _exit(128 + SIGKILL);
        }
        if (fds[FD_REPORT].revents) {
            struct report msgs[8];
            ssize_t n = read(p.report[0], msgs, sizeof msgs);
            if (n <= 0 && !(n < 0 && errno == EINTR)) close_fd(&p.report[0]);
            for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof msgs[0]; i++) {
                if (msgs[i].kind == 'U') {
                    write_id_maps(plan, setup);
                    write_all(p.go[1], "G", 1);
                    close_fd(&p.go[1]);
                } else if (msgs[i].kind == 'P') {
                    container = msgs[i].value;
                } else if (msgs[i].kind == 'O') {
                    oom_killed = true;
                } else if (msgs[i].kind == 'X') {
                    container_status = msgs[i].value;
                    have_status = true;
                }
            }
            /* handoff: a start that failed ends here, the container's status known (WNOWAIT) */
            if (handoff && have_status && p.exec[0] < 0 && !setup_done) kill(setup, SIGKILL);
            continue; /* the report pipe first: 'P' must be known before the exec pipe's EOF */
        }
        /* The terminal is sent before the container reports ready: take it first. */
        if (fds[FD_CONSOLE].revents) {
            int master = recv_fd(p.console[0]);
            if (master >= 0) terminal_arrived(plan, &term, master);
            else close_fd(&p.console[0]); /* EOF: the container process has run execve (or failed) */
        }
        if (fds[FD_EXEC].revents) {
            char c;
            ssize_t n = read(p.exec[0], &c, 1);
            if (n == 1 && c == 'H' && !created && container > 0) {
                created = true;
                report_pids("created", container, monitor_pid);
                if (handoff) hand_off(plan, &term, &p.console[0], setup);
            } else if (n == 1 && c == 'S' && container > 0) {
                report_pids("paused", container, monitor_pid);
            } else if (n == 1) {
                exec_failed = true;
            } else if (!(n < 0 && errno == EINTR)) {
                close_fd(&p.exec[0]);
                /* held, it must have said it was ready before running execve */
                if (plan->hold && !created) exec_failed = true;
                if (!exec_failed && container > 0 && !interrupted_by) {
                    started = true;
                    if (plan->mon.pid_file) {
                        char text[32];
                        snprintf(text, sizeof text, "%d", (int)container);
                        int err = write_file_atomic(plan->mon.pid_file, text);
                        if (err) {
                            kill(container, SIGKILL);
                            fail(err, "write the pid file %s", plan->mon.pid_file);
                        }
                    }
                    report_pids("started", container, monitor_pid);
                    if (p.run[1] >= 0) {
                        write_all(p.run[1], "R", 1); /* the setup process may accept clients now */
                        close_fd(&p.run[1]);
                    }
                    if (handoff) hand_off(plan, &term, &p.console[0], setup);
                    /* Detached: nook may go now. */
                    if (detached) close_fd(&g.status_fd);
                } else if (handoff && have_status && !setup_done) {
                    kill(setup, SIGKILL);
                }
            }
        }
        if (fds[FD_OUT].revents) pump_log(&p.out[0], log_fd, "stdout");
        if (fds[FD_ERR].revents) pump_log(&p.err[0], log_fd, "stderr");
        if (term.master >= 0 && (fds[FD_MASTER].revents & POLLOUT)) relay_flush(&term);
        if (term.master >= 0 && (fds[FD_MASTER].revents & ~POLLOUT)) relay_output(&term, log_fd);
        if (term.master >= 0 && fds[FD_STDIN].revents) relay_input(&term);
        if (fds[FD_SIG].revents) {
            struct signalfd_siginfo si;
            while (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGCHLD) {
                    int status;
                    pid_t done;
                    while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
                        if (done == setup) {
                            setup_done = true;
                            setup_status = status;
                            g.n_kill = 0;
                        }
                    }
                } else if (sig == SIGWINCH && term.master >= 0 && !term.to_log) {
                    /* the container's terminal follows ours; the kernel signals its programs */
                    copy_window_size(term.master);
                } else if (started) {
                    /* A terminal's Ctrl-C reaches its whole foreground process group,
                     * the container included: do not deliver it a second time. */
                    if (si.ssi_code == SI_KERNEL && getpgid(container) == getpgrp()) continue;
                    kill(container, sig);
                } else if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
                    /* Before the container runs there is nothing to forward to: abandon the start. */
                    interrupted_by = sig;
                    kill(setup, SIGKILL);
                }
            }
        }
    }
    restore_user_terminal();

    if (started && !have_status) {
        /* The setup process was killed, and the container with it (parent-death signal). */
        container_status = SIGKILL;
        have_status = true;
    }
    if (started && have_status) {
        int code = WIFEXITED(container_status) ? WEXITSTATUS(container_status) : 128 + WTERMSIG(container_status);
        int sig = WIFSIGNALED(container_status) ? WTERMSIG(container_status) : 0;
        if (plan->mon.exit_file) {
            char text[16];
            snprintf(text, sizeof text, "%d%s", code, oom_killed ? " oom" : "");
            write_file_atomic(plan->mon.exit_file, text);
        }
        struct line l = { .len = 0 };
        ln_raw(&l, "{\"type\":\"exited\",\"code\":");
        ln_int(&l, code);
        ln_raw(&l, ",\"signal\":");
        if (sig) ln_int(&l, sig);
        else ln_raw(&l, "null");
        if (oom_killed) ln_raw(&l, ",\"oomKilled\":true");
        ln_raw(&l, "}");
        status_send(&l);
        run_on_exit(plan, &original_mask);
        _exit(code);
    }
    if (interrupted_by) {
        char msg[128];
        snprintf(msg, sizeof msg, "interrupted by %s before the container started", signal_name(interrupted_by));
        fail_with(128 + interrupted_by, 0, msg, "start");
    }
    if (exec_failed && have_status && WIFEXITED(container_status) && WEXITSTATUS(container_status) != 0)
        _exit(WEXITSTATUS(container_status)); /* the container reported why */
    if (WIFEXITED(setup_status) && WEXITSTATUS(setup_status) != 0) _exit(WEXITSTATUS(setup_status)); /* the setup process reported why */
    char how[64], msg[128];
    describe_wait_status(have_status ? container_status : setup_status, how, sizeof how);
    snprintf(msg, sizeof msg, "the %s process %s before it could start", have_status ? "container" : "setup", how);
    fail_with(EXIT_INTERNAL, 0, msg, "start");
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--decode")) {
        size_t len = 0;
        const char *error = NULL;
        char *buf = read_plan(0, &len, &error);
        struct plan plan;
        if (buf) error = decode_plan(buf, len, &plan);
        if (error) {
            fprintf(stderr, "nook-exec: cannot decode the plan: %s\n", error);
            return 2;
        }
        print_plan(&plan);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: nook-exec            (started by nook: plan on fd %d, status on fd %d)\n"
                        "       nook-exec --decode   (print a plan read on stdin as JSON)\n",
                PLAN_FD, STATUS_FD);
        return 2;
    }
    if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) < 0 || fcntl(PLAN_FD, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "nook-exec: expects the status pipe on fd %d and the plan on fd %d: it is started by nook\n", STATUS_FD, PLAN_FD);
        return EXIT_INTERNAL;
    }
    g.status_fd = STATUS_FD;
    /* fds 5.. are the monitor's lifelines: held here until exit, inherited by no program. */
    close_range(PLAN_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);
    size_t len = 0;
    const char *error = NULL;
    char *buf = read_plan(PLAN_FD, &len, &error);
    if (!buf) fail_with(EXIT_INTERNAL, 0, error, "read the plan");
    struct plan plan;
    error = decode_plan(buf, len, &plan);
    if (error) fail_with(EXIT_INTERNAL, 0, error, "decode the plan");
    if (!plan.hold && !plan.hold_setup) close(PLAN_FD); /* else it is the control fd, passed down to the container process */
    g.trace = plan.trace;
    run_monitor(&plan);
}
