/* The pause stand-in for the local cluster (tests/cluster/images.py builds it with `gcc -static`).
 * Like Kubernetes' own pause: wait for a signal, exit on SIGINT/SIGTERM, reap children (it is
 * PID 1 of the pod sandbox). Without a handler, PID 1 would ignore SIGTERM and every pod
 * deletion would wait out its grace period. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &q, NULL);
  sigaction(SIGTERM, &q, NULL);
  sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
  return 42;
}
