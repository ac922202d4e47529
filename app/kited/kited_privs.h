/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_PRIVS_H
#define KITED_PRIVS_H

/**
 * @file
 * What kited gives up once EAL, the port, the pools and the control thread
 * are set up (docs/security.rst, "Privileges"):
 *
 *  - root: with `user`, every thread switches to that user and its group
 *    (and only that group); the kernel then clears every capability, and
 *    the bounding set is emptied so none can come back;
 *  - a seccomp filter (on by default, root or not), installed on every
 *    thread at once: the system calls an attacker who took over the
 *    process would want and kited never makes after set-up fail with
 *    EPERM (exec, ptrace and process_vm_*, kernel modules and kexec,
 *    mount and pivot_root, new namespaces, bpf, perf_event_open, keyrings,
 *    userfaultfd, clock and reboot calls, raw I/O ports, and other ABIs
 *    such as x32 and int 0x80). clone3 answers ENOSYS so that threads are
 *    still made with clone, whose namespace flags the filter can see.
 *
 * A deny list, not an allow list: libcurl (etcd) and DPDK's own threads
 * keep working whatever they call; the calls that matter to an attacker
 * are shut.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <linux/filter.h>

/** Instructions the filter takes at most. */
#define KITED_SECCOMP_MAX 96

/**
 * Build the filter for the running architecture into prog[] (at least
 * KITED_SECCOMP_MAX entries). @return its length, or -ENOTSUP on an
 * architecture the filter does not know.
 */
int kited_seccomp_build(struct sock_filter *prog, size_t cap);

/**
 * Install the filter on every thread of the process (no_new_privs too).
 * @return 0 or -errno (message in err).
 */
int kited_seccomp_install(char *err, size_t errlen);

/** A user to become: its ids, resolved before anything starts. */
struct kited_user {
	uid_t uid;
	gid_t gid;
	char name[64];
};

/** Resolve a user name (or a numeric uid). @return 0 or -ENOENT/-EINVAL (message in err). */
int kited_user_lookup(const char *name, struct kited_user *u, char *err, size_t errlen);

/**
 * Become u in every thread: groups, gid, uid; then check that root cannot
 * come back and that no capability is left. @return 0 or -errno (message in err).
 */
int kited_drop_root(const struct kited_user *u, char *err, size_t errlen);

/** The calling thread's effective and permitted capability sets, as one mask each. */
int kited_caps_get(unsigned long long *effective, unsigned long long *permitted);

#endif
