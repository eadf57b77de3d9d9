// ctest: timeout=600
/*
 * slow_killtest.c: real crashes. A child process (tests/helpers/crashchild, started with
 * posix_spawn) commits in a loop and reports each acknowledged counter through a pipe. The parent
 * SIGKILLs it after a seeded number of acknowledgements, or the child kills itself at a seeded
 * OS-call count (so kills land in commits, spills, checkpoints and recovery). Then the parent
 * reopens and checks that every acknowledged commit is there and nothing else but the one in
 * flight. The seed is printed; NX_KILL_SEED=<n> replays a run.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pager_testutil.h"

extern char **environ;

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static bool asan_scale(void) {
  const char *s = getenv("NX_TEST_SCALE");
  return s && strcmp(s, "asan") == 0;
}

Test(killtest, sigkill_in_commits_checkpoints_and_recovery) {
  const char *bd = getenv("NX_BUILD_DIR");
  char child[1024];
  snprintf(child, sizeof child, "%s/tests/crashchild", bd ? bd : NX_BUILD_DIR);
  cr_assert(access(child, X_OK) == 0, "crash child %s missing", child);
  uint64_t seed = (uint64_t)time(NULL);
  const char *es = getenv("NX_KILL_SEED");
  if (es) seed = strtoull(es, NULL, 10);
  printf("slow_killtest: seed %llu (replay with NX_KILL_SEED=%llu)\n", (unsigned long long)seed,
         (unsigned long long)seed);
  fflush(stdout);
  uint64_t s = seed * 2654435761u + 1;
  char path[256];
  pt_tmpfile(path, sizeof path, "kill.db");
  int rounds = asan_scale() ? 60 : 300;
  uint64_t acked_total = 0, killed_by_parent = 0, self_killed = 0, finished = 0, inflight_durable = 0;
  uint64_t known = 0; /* the counter the database holds (verified after each round) */
  for (int round = 0; round < rounds; round++) {
    bool self = rng(&s) % 2 == 0;
    uint64_t kill_acks = 1 + rng(&s) % 12;
    uint64_t kill_at = self ? 1 + rng(&s) % 400 : 0;
    char a_max[32], a_kill[32], a_seed[32];
    snprintf(a_max, sizeof a_max, "%d", self ? 40 : 1000);
    snprintf(a_kill, sizeof a_kill, "%llu", (unsigned long long)kill_at);
    snprintf(a_seed, sizeof a_seed, "%llu", (unsigned long long)rng(&s) % 1000);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {child, path, a_max, a_kill, a_seed, NULL};
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, child, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    uint64_t last = known, n = 0;
    bool sent_kill = false;
    uint8_t b[8];
    for (;;) {
      ssize_t r = read(fds[0], b, 8);
      if (r < 0 && errno == EINTR) continue;
      if (r != 8) break;
      last = nx_get64(b);
      n++;
      if (!self && !sent_kill && n >= kill_acks) {
        kill(pid, SIGKILL);
        sent_kill = true;
      }
    }
    close(fds[0]);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
      if (sent_kill) killed_by_parent++;
      else self_killed++;
    } else {
      cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: child exit status %d", round, st);
      finished++;
    }
    acked_total += n;
    cr_assert(n == 0 || last > known, "round %d: acks went backwards", round);
    /* reopen and verify */
    nx_open_opts o = NX_OPEN_OPTS_INIT;
    pager *p = NULL;
    int rc = pager_open(path, &o, &p);
    cr_assert_eq(rc, NX_OK, "round %d (seed %llu): reopen: %s %s", round, (unsigned long long)seed, nx_code_name(rc),
                 nx_err_msg());
    uint64_t c = 0;
    rc = pt_verify(p, &c);
    cr_assert_eq(rc, NX_OK, "round %d (seed %llu): verify: %s", round, (unsigned long long)seed, nx_err_msg());
    cr_assert(c >= last, "round %d (seed %llu): acknowledged commit %llu lost (found %llu)", round,
              (unsigned long long)seed, (unsigned long long)last, (unsigned long long)c);
    cr_assert(c <= last + 1, "round %d (seed %llu): counter %llu beyond the in-flight commit %llu", round,
              (unsigned long long)seed, (unsigned long long)c, (unsigned long long)last + 1);
    if (c == last + 1) inflight_durable++;
    known = c;
    cr_assert_eq(pager_close(p), NX_OK);
  }
  printf("slow_killtest: %d rounds: %llu killed by the parent after acks, %llu killed themselves at an OS call, "
         "%llu ran to the end; %llu acknowledged commits, all present; %llu in-flight commits found durable\n",
         rounds, (unsigned long long)killed_by_parent, (unsigned long long)self_killed, (unsigned long long)finished,
         (unsigned long long)acked_total, (unsigned long long)inflight_durable);
  fflush(stdout);
  pt_cleanup(path);
}
