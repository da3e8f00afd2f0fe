/*
 * nook-init: a minimal init for `nook run --init`, bound into the container
 * at /run/nook-init and run as its PID 1.
 *
 * Why: PID 1 is special. The kernel does not apply default signal actions to
 * it (a SIGTERM with no handler is ignored), and orphaned processes are
 * re-parented to it, so something must reap them. Most programs are not
 * written to be PID 1; this one runs the real command as its child, forwards
 * every catchable signal to it, reaps every zombie, and exits with the
 * child's status (128+N if a signal N ended it).
 *
 * Built statically: the container's image may have no C library at all.
 * Usage: nook-init -- COMMAND [ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
  if (first >= argc) {
    fprintf(stderr, "nook-init: usage: nook-init -- COMMAND [ARGS...]\n");
    return 125;
  }

  /* Block everything; signals are taken synchronously with sigwait below. */
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);

  pid_t child = fork();
  if (child < 0) {
    perror("nook-init: fork");
    return 125;
  }
  if (child == 0) {
    /* The child leads its own process group, so a terminal's ^C reaches it
     * (tcsetpgrp while SIGTTOU is still blocked, or it would stop us). */
    setpgid(0, 0);
    if (isatty(STDIN_FILENO)) tcsetpgrp(STDIN_FILENO, getpid());
    sigprocmask(SIG_SETMASK, &previous, NULL);
    execvp(argv[first], &argv[first]);
    fprintf(stderr, "nook-init: %s: %s\n", argv[first], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }

  for (;;) {
    int sig = 0;
    if (sigwait(&all, &sig) != 0) continue;
    if (sig == SIGCHLD) {
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != child) continue; /* an orphan: reaped, nothing else to do */
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      }
      continue;
    }
    /* SIGTTOU/SIGTTIN/SIGTSTP stop only the child's group; pass the rest on. */
    kill(child, sig);
  }
}
