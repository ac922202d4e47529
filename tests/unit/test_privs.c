/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Giving up root and the seccomp filter (app/kited/privs.c). Each check runs
 * in a child process, which installs the filter or drops root for real and
 * reports through its exit status (a filter cannot be taken back). Children
 * leave with _exit(): no sanitizer runs its exit-time checks under the
 * filter (LeakSanitizer would ptrace).
 */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kited_privs.h"

/* Run fn in a child; its exit status (0: every check held; else the failed check's line). */
static int
in_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child: %s failed (line %d, errno %d)\n", #cond, __LINE__, \
				errno);                                                            \
			return __LINE__ % 250 + 1;                                                 \
		}                                                                                  \
	} while (0)

static void *
thread_body(void *arg)
{
	*(int *)arg = (int)getpid();
	return NULL;
}

/* After the filter: what an attacker wants fails with EPERM, what kited does still works. */
static int
filtered(void)
{
	char err[256];
	char *const argv[] = { (char *)"/bin/true", NULL };
	pthread_t th;
	int got = 0;

	CHILD_CHECK(kited_seccomp_install(err, sizeof(err)) == 0);
	errno = 0;
	CHILD_CHECK(execve("/bin/true", argv, NULL) == -1 && errno == EPERM);
	CHILD_CHECK(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == -1 && errno == EPERM);
	CHILD_CHECK(unshare(CLONE_NEWUSER) == -1 && errno == EPERM);
	CHILD_CHECK(unshare(CLONE_NEWNET) == -1 && errno == EPERM);
	/* (ENOENT without the filter: nothing is mounted should it be missing.) */
	CHILD_CHECK(mount("none", "/nonexistent-kite-test", "tmpfs", 0, NULL) == -1 &&
		    errno == EPERM);
	CHILD_CHECK(syscall(__NR_bpf, 0, NULL, 0) == -1 && errno == EPERM);
	CHILD_CHECK(syscall(__NR_init_module, NULL, 0, "") == -1 && errno == EPERM);
	CHILD_CHECK(syscall(__NR_setuid, 0) == -1 && errno == EPERM);
	CHILD_CHECK(syscall(__NR_clone3, NULL, 0) == -1 && errno == ENOSYS);
	/* A clone that makes a namespace is refused; threads still start (clone). */
	long r = syscall(__NR_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
	if (r == 0)
		_exit(0); /* (only without the filter) */
	CHILD_CHECK(r == -1 && errno == EPERM);
	CHILD_CHECK(pthread_create(&th, NULL, thread_body, &got) == 0);
	CHILD_CHECK(pthread_join(th, NULL) == 0 && got == (int)getpid());
	/* Everyday calls. */
	CHILD_CHECK(getpid() > 0);
	FILE *f = fopen("/proc/self/status", "r");
	CHILD_CHECK(f != NULL);
	char line[256];
	int mode = -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	CHILD_CHECK(mode == 2);
	/* fork works (kited never forks; the filter does not care). */
	pid_t p = fork();
	if (p == 0)
		_exit(7);
	int st;
	CHILD_CHECK(p > 0 && waitpid(p, &st, 0) == p && WEXITSTATUS(st) == 7);
	return 0;
}

static void
test_filter(void **state)
{
	(void)state;
	assert_int_equal(in_child(filtered), 0);
}

/* Threads that exist before the filter get it too (TSYNC). */
static pthread_barrier_t bar;
static volatile int thread_execve_errno;

static void *
early_thread(void *arg)
{
	char *const argv[] = { (char *)"/bin/true", NULL };

	(void)arg;
	pthread_barrier_wait(&bar); /* filter installed by the main thread */
	errno = 0;
	if (execve("/bin/true", argv, NULL) == -1)
		thread_execve_errno = errno;
	return NULL;
}

static int
filtered_threads(void)
{
	char err[256];
	pthread_t th;

	CHILD_CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
	CHILD_CHECK(pthread_create(&th, NULL, early_thread, NULL) == 0);
	CHILD_CHECK(kited_seccomp_install(err, sizeof(err)) == 0);
	pthread_barrier_wait(&bar);
	CHILD_CHECK(pthread_join(th, NULL) == 0);
	CHILD_CHECK(thread_execve_errno == EPERM);
	return 0;
}

static void
test_filter_every_thread(void **state)
{
	(void)state;
	assert_int_equal(in_child(filtered_threads), 0);
}

/* The program's shape: the architecture check first, every jump inside it. */
static void
test_filter_shape(void **state)
{
	struct sock_filter prog[KITED_SECCOMP_MAX];
	int n = kited_seccomp_build(prog, KITED_SECCOMP_MAX);

	(void)state;
	assert_true(n > 10 && n <= KITED_SECCOMP_MAX);
	for (int i = 0; i < n; i++)
		if (BPF_CLASS(prog[i].code) == BPF_JMP) {
			assert_true(i + 1 + prog[i].jt < n);
			assert_true(i + 1 + prog[i].jf < n);
		}
	assert_int_equal(BPF_CLASS(prog[n - 1].code), BPF_RET);
	/* Too small a buffer is refused, never overrun. */
	assert_int_equal(kited_seccomp_build(prog, 5), -ENOSPC);
}

static void
test_user_lookup(void **state)
{
	struct kited_user u;
	char err[256];

	(void)state;
	assert_int_equal(kited_user_lookup("nobody", &u, err, sizeof(err)), 0);
	assert_true(u.uid != 0);
	assert_string_equal(u.name, "nobody");
	struct kited_user v;
	char num[32];
	snprintf(num, sizeof(num), "%u", (unsigned int)u.uid);
	assert_int_equal(kited_user_lookup(num, &v, err, sizeof(err)), 0);
	assert_int_equal(v.uid, u.uid);
	assert_int_equal(kited_user_lookup("root", &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "root"));
	assert_int_equal(kited_user_lookup("0", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_user_lookup("no-such-user-kite", &u, err, sizeof(err)), -ENOENT);
	assert_int_equal(kited_user_lookup("", &u, err, sizeof(err)), -EINVAL);
}

/* Root given up in every thread: ids, no capabilities, root cannot come back. */
static volatile int other_ok;

static void *
other_thread(void *arg)
{
	unsigned long long eff = 1, perm = 1;

	(void)arg;
	pthread_barrier_wait(&bar); /* root given up by the main thread */
	other_ok = getuid() != 0 && geteuid() != 0 && kited_caps_get(&eff, &perm) == 0 &&
		   eff == 0 && perm == 0;
	return NULL;
}

static int
dropped(void)
{
	struct kited_user u;
	char err[256];
	unsigned long long eff, perm;
	pthread_t th;

	CHILD_CHECK(kited_user_lookup("nobody", &u, err, sizeof(err)) == 0);
	CHILD_CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
	CHILD_CHECK(pthread_create(&th, NULL, other_thread, NULL) == 0);
	if (kited_drop_root(&u, err, sizeof(err)) != 0) {
		fprintf(stderr, "child: %s\n", err);
		return 250;
	}
	pthread_barrier_wait(&bar);
	CHILD_CHECK(pthread_join(th, NULL) == 0);
	CHILD_CHECK(other_ok);
	CHILD_CHECK(getuid() == u.uid && getgid() == u.gid);
	CHILD_CHECK(kited_caps_get(&eff, &perm) == 0 && eff == 0 && perm == 0);
	CHILD_CHECK(setuid(0) == -1);
	gid_t groups[8];
	int ng = getgroups(8, groups);
	CHILD_CHECK(ng == 1 && groups[0] == u.gid);
	return 0;
}

static void
test_drop_root(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("not root: switching users not tried\n");
		skip();
	}
	assert_int_equal(in_child(dropped), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_shape),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_filter_every_thread),
		cmocka_unit_test(test_user_lookup),
		cmocka_unit_test(test_drop_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
