/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Giving up root and closing system calls once kited is set up
 * (kited_privs.h, docs/security.rst).
 */

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>

#include "kited_privs.h"

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#endif

/* clone() flags that make a namespace (CLONE_NEWTIME is clone3-only: its bit is CSIGNAL's here). */
#define CLONE_NS_FLAGS                                                                             \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |             \
	 CLONE_NEWPID | CLONE_NEWNET)

/* System calls that fail with EPERM once the filter is on (those this architecture has). */
static const int denied[] = {
	/* running other programs, reading or steering other processes */
	__NR_execve, __NR_execveat, __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev,
	/* the kernel itself */
	__NR_init_module, __NR_finit_module, __NR_delete_module, __NR_kexec_load,
#ifdef __NR_kexec_file_load
	__NR_kexec_file_load,
#endif
	__NR_bpf, __NR_perf_event_open, __NR_userfaultfd, __NR_keyctl, __NR_add_key,
	__NR_request_key, __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
	/* file systems and namespaces */
	__NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot, __NR_unshare, __NR_setns,
	__NR_open_by_handle_at, __NR_fsopen, __NR_fsconfig, __NR_fsmount, __NR_fspick,
	__NR_move_mount, __NR_open_tree, __NR_mount_setattr, __NR_swapon, __NR_swapoff,
	__NR_quotactl, __NR_acct, __NR_vhangup,
	/* the machine */
	__NR_reboot, __NR_settimeofday, __NR_clock_settime, __NR_clock_adjtime, __NR_adjtimex,
	__NR_syslog,
#ifdef __NR_iopl
	__NR_iopl,
#endif
#ifdef __NR_ioperm
	__NR_ioperm,
#endif
	/* identity: set once, before the filter */
	__NR_setuid, __NR_setgid, __NR_setreuid, __NR_setregid, __NR_setresuid, __NR_setresgid,
	__NR_setfsuid, __NR_setfsgid, __NR_setgroups, __NR_capset,
};

enum label { L_NEXT = 0, L_EPERM, L_ENOSYS, L_KILL, L_CLONE, L_N };

struct asm_ {
	struct sock_filter *p;
	size_t n, cap;
	uint8_t jt[KITED_SECCOMP_MAX], jf[KITED_SECCOMP_MAX]; /* labels, resolved at the end */
	size_t at[L_N];
};

static void
emit(struct asm_ *a, uint16_t code, uint32_t k, enum label jt, enum label jf)
{
	if (a->n < a->cap && a->n < KITED_SECCOMP_MAX) {
		a->p[a->n] = (struct sock_filter)BPF_STMT(code, k);
		a->jt[a->n] = (uint8_t)jt;
		a->jf[a->n] = (uint8_t)jf;
	}
	a->n++;
}

int
kited_seccomp_build(struct sock_filter *prog, size_t cap)
{
#ifndef SECCOMP_ARCH
	(void)prog;
	(void)cap;
	return -ENOTSUP;
#else
	struct asm_ a = { .p = prog, .cap = cap };

	/* Another ABI (int 0x80 on x86_64) would number everything else: kill. */
	emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), L_NEXT, L_NEXT);
	emit(&a, BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, L_NEXT, L_KILL);
	emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), L_NEXT, L_NEXT);
#if defined(__x86_64__)
	/* x32 system calls: the same numbers with bit 30 set. */
	emit(&a, BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, L_EPERM, L_NEXT);
#endif
	emit(&a, BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, L_ENOSYS, L_NEXT);
	emit(&a, BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, L_CLONE, L_NEXT);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		emit(&a, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied[i], L_EPERM, L_NEXT);
	emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, L_NEXT, L_NEXT);
	a.at[L_CLONE] = a.n;
	emit(&a, BPF_LD | BPF_W | BPF_ABS, ARG0_LO, L_NEXT, L_NEXT);
	emit(&a, BPF_JMP | BPF_JSET | BPF_K, CLONE_NS_FLAGS, L_EPERM, L_NEXT);
	emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, L_NEXT, L_NEXT);
	a.at[L_EPERM] = a.n;
	emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA), L_NEXT, L_NEXT);
	a.at[L_ENOSYS] = a.n;
	emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA), L_NEXT, L_NEXT);
	a.at[L_KILL] = a.n;
	emit(&a, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, L_NEXT, L_NEXT);
	if (a.n > cap || a.n > KITED_SECCOMP_MAX)
		return -ENOSPC;
	/* Jumps are relative to the next instruction, forward only, at most 255. */
	for (size_t i = 0; i < a.n; i++) {
		if (BPF_CLASS(prog[i].code) != BPF_JMP)
			continue;
		prog[i].jt = a.jt[i] == L_NEXT ? 0 : (uint8_t)(a.at[a.jt[i]] - i - 1);
		prog[i].jf = a.jf[i] == L_NEXT ? 0 : (uint8_t)(a.at[a.jf[i]] - i - 1);
	}
	return (int)a.n;
#endif
}

int
kited_seccomp_install(char *err, size_t errlen)
{
	struct sock_filter prog[KITED_SECCOMP_MAX];
	struct sock_fprog fp;
	int n = kited_seccomp_build(prog, KITED_SECCOMP_MAX);

	if (n < 0) {
		snprintf(err, errlen, "seccomp: no filter for this architecture (set seccomp = off)");
		return n;
	}
	fp.len = (unsigned short)n;
	fp.filter = prog;
	/* No privilege comes back through exec (which the filter refuses anyway). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "seccomp: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -errno;
	}
	/* Every thread (DPDK's, the control thread, the workers) at once. */
	long rc = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fp);
	if (rc != 0) {
		int e = rc > 0 ? ESRCH : errno;

		snprintf(err, errlen, "seccomp: cannot install the filter%s: %s",
			 rc > 0 ? " on every thread" : "", strerror(e));
		return -e;
	}
	return 0;
}

int
kited_user_lookup(const char *name, struct kited_user *u, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc;

	memset(u, 0, sizeof(*u));
	if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(u->name)) {
		snprintf(err, errlen, "user: empty or too long");
		return -EINVAL;
	}
	rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (res == NULL) {
		char *end;
		unsigned long id = strtoul(name, &end, 10);

		if (*end == '\0' && end != name && id < UINT_MAX)
			rc = getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res);
	}
	if (res == NULL) {
		snprintf(err, errlen, "user %s: %s", name,
			 rc != 0 ? strerror(rc) : "no such user");
		return -ENOENT;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen, "user %s is root: name an unprivileged user", name);
		return -EINVAL;
	}
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
	return 0;
}

int
kited_caps_get(unsigned long long *effective, unsigned long long *permitted)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(__NR_capget, &h, d) != 0)
		return -errno;
	*effective = (unsigned long long)d[1].effective << 32 | d[0].effective;
	*permitted = (unsigned long long)d[1].permitted << 32 | d[0].permitted;
	return 0;
}

int
kited_drop_root(const struct kited_user *u, char *err, size_t errlen)
{
	unsigned long long eff, perm;

	if (u->uid == 0) {
		snprintf(err, errlen, "user: refusing to become root");
		return -EINVAL;
	}
	/* The bounding set while we still may (this thread; exec is refused anyway). */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
			snprintf(err, errlen, "user: cannot drop capability %d from the bounding set: %s",
				 cap, strerror(errno));
			return -errno;
		}
	/* glibc applies each of these to every thread of the process. */
	if (setgroups(1, &u->gid) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0) {
		int e = errno;

		snprintf(err, errlen, "user %s: cannot switch to uid %u gid %u: %s", u->name,
			 (unsigned int)u->uid, (unsigned int)u->gid, strerror(e));
		return -e;
	}
	/* Check rather than trust: root must not come back, no capability left. */
	if (getuid() != u->uid || geteuid() != u->uid || getgid() != u->gid ||
	    getegid() != u->gid) {
		snprintf(err, errlen, "user %s: ids did not change", u->name);
		return -EPERM;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		snprintf(err, errlen, "user %s: root came back", u->name);
		return -EPERM;
	}
	if (kited_caps_get(&eff, &perm) != 0 || eff != 0 || perm != 0) {
		snprintf(err, errlen, "user %s: capabilities left (effective %#llx, permitted %#llx)",
			 u->name, eff, perm);
		return -EPERM;
	}
	return 0;
}
