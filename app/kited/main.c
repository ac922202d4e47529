/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_version.h>

#include "kite_conf.h"
#include "kite_port.h"
#include "kited.h"
#include "kited_admin.h"
#include "kited_privs.h"
#include "kited_sizing.h"

/* The node; main() owns it, the signal handler only sets its quit flag. */
static struct node node;

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		node.hup_req = true;
		return;
	}
	/* A second signal while leaving the cluster: stop now. */
	if (node.stop_req)
		node.quit = true;
	node.stop_req = true;
}

static void
usage_hook(const char *prog)
{
	(void)prog;
	printf("\n");
	kited_config_usage(stdout, "kited");
	printf("\nThe EAL options are listed above; kite options go after \"--\".\n");
}

static int
write_pid_file(const char *path)
{
	FILE *f;

	if (path[0] == '\0')
		return 0;
	f = fopen(path, "w");
	if (f == NULL) {
		KLOG(ERR, "pid-file %s: %s", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	return 0;
}

/*
 * The pid file's folder must exist and be writable before anything is
 * allocated: a missing /run/kite (at boot, /run is empty) would otherwise
 * be found only after all memory is set up.
 */
static int
check_pid_file(const char *path)
{
	char dir[PATH_MAX];
	const char *slash;

	if (path[0] == '\0')
		return 0;
	slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (access(dir, W_OK) == 0)
		return 0;
	fprintf(stderr,
		"kited: pid-file %s: folder %s %s; create it first (under systemd, "
		"RuntimeDirectory=kite makes /run/kite), or set another pid-file\n",
		path, dir, errno == ENOENT ? "does not exist" : "is not writable");
	return -1;
}

/*
 * Say why EAL did not start, in words: its own lines above name the step,
 * and rte_errno is often left at 0 ("Success"). The commonest cause, a
 * second process with the same --file-prefix, is checked for directly.
 */
static void
eal_failed(int argc, char **argv)
{
	const char *prefix = "rte", *xdg = getenv("XDG_RUNTIME_DIR");
	char path[512];
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--file-prefix") == 0 && i + 1 < argc)
			prefix = argv[i + 1];
		else if (strncmp(argv[i], "--file-prefix=", 14) == 0)
			prefix = argv[i] + 14;
	}
	snprintf(path, sizeof(path), "%s/dpdk/%s/config",
		 getuid() == 0 ? "/var/run" : (xdg != NULL ? xdg : "/tmp"), prefix);
	fd = open(path, O_RDONLY);
	if (fd >= 0 && fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type != F_UNLCK) {
		fprintf(stderr,
			"kited: EAL did not start: another DPDK process (pid %d) runs with "
			"--file-prefix %s; give each kited its own --file-prefix\n",
			(int)lk.l_pid, prefix);
	} else if (rte_errno != 0) {
		fprintf(stderr, "kited: EAL did not start: %s (EAL's lines above name the step)\n",
			rte_strerror(rte_errno));
	} else {
		fprintf(stderr,
			"kited: EAL did not start (EAL's lines above name the step). Usual causes: "
			"too little memory (no hugepages: use --no-huge -m 512), an EAL option it "
			"does not take (kited --help), or no permission (run as root)\n");
	}
	if (fd >= 0)
		close(fd);
}

/* The port option (id, device name or vdev spec) to a port id, through lib/port. */
static int
port_resolve(struct node *n)
{
	char err[320];
	int rc = kite_port_resolve(n->cfg.port, &n->port, err, sizeof(err));

	if (rc != 0)
		KLOG(ERR, "%s", err);
	return rc;
}

/*
 * af_packet hands over whole frames up to its framesz (2048 by default):
 * a larger request, which the kernel reassembled, arrives cut and only its
 * first request is answered (E2BIG), and a framesz the RX mbufs cannot hold makes
 * the queue set-up fail with a bare ENOMEM. Say which, before the start.
 */
static int
check_frame_size(const struct node *n)
{
	struct rte_eth_dev_info di;
	const struct rte_devargs *da;
	const char *fs;
	unsigned long framesz = 2048;
	uint64_t room = kited_rx_pool_needed(&n->cfg)
				? n->cfg.rx_mbuf_size
				: (uint64_t)kited_mbuf_room(&n->cfg) - RTE_PKTMBUF_HEADROOM;

	if (rte_eth_dev_info_get(n->port, &di) != 0 || strcmp(di.driver_name, "net_af_packet") != 0)
		return 0;
	da = rte_dev_devargs(di.device);
	fs = da != NULL && da->args != NULL ? strstr(da->args, "framesz=") : NULL;
	if (fs != NULL)
		framesz = strtoul(fs + 8, NULL, 0);
	/* af_packet's frame header takes 32 bytes of the frame. */
	if (framesz > room + 32) {
		KLOG(ERR,
		     "port %u (af_packet) takes frames of %lu bytes but RX mbufs hold %" PRIu64
		     ": set rx-mbuf-size %lu (--profile af_packet does)",
		     n->port, framesz, room, framesz);
		return -EINVAL;
	}
	if (framesz <= 2048)
		KLOG(WARNING,
		     "port %u (af_packet) takes frames of %lu bytes: datagrams above about %lu bytes "
		     "are cut, their first request answered E2BIG (kite_net_truncated). Give the "
		     "vdev framesz=32768,blocksz=32768 and use --profile af_packet",
		     n->port, framesz, framesz - 64);
	return 0;
}

static void
add_static(uint32_t ip, const uint8_t mac[6], void *arg)
{
	struct node *n = arg;
	struct rte_ether_addr a;

	memcpy(a.addr_bytes, mac, 6);
	if (kite_neigh_add_static(n->neigh, ip, &a) != 0)
		KLOG(WARNING, "neighbours: no room for %u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
		     (ip >> 8) & 0xff, ip & 0xff);
}

/*
 * Where replies go (docs/security.rst): through the node's neighbour table,
 * shared by the workers, unless the link has a single peer (memif), where
 * the frame's source is the only station there is.
 */
static int
neighbours_setup(struct node *n, const char *driver)
{
	char err[160];
	int mode = kite_conf_choice(KITED_REPLY_MAC_MODES, n->cfg.reply_mac);

	n->neigh = kite_neigh_create(KITE_NEIGH_DEFAULT, rte_socket_id());
	if (n->neigh == NULL) {
		kited_no_memory(&n->mem, "the neighbour table");
		return -ENOMEM;
	}
	if (kited_neighbours_parse(n->cfg.neighbours, add_static, n, err, sizeof(err)) < 0) {
		KLOG(ERR, "%s", err);
		return -EINVAL;
	}
	n->netconf.neigh = n->neigh;
	n->netconf.gateway = n->cfg.gateway;
	n->netconf.reply_to_frame = mode == KITED_REPLY_FRAME ||
				    (mode == KITED_REPLY_AUTO && strcmp(driver, "net_memif") == 0);
	KLOG(INFO, "replies go to %s%s", n->netconf.reply_to_frame
		       ? "the request frame's source MAC (a link with one peer)"
		       : "the neighbour table's MAC for their next hop (ARP)",
	     !n->netconf.reply_to_frame && n->cfg.gateway == 0
		     ? "; no gateway: clients outside ip/netmask get no reply"
		     : "");
	return 0;
}

/* Start the port with one queue pair per worker (lib/port), then steer it. */
static int
port_open(struct node *n)
{
	const struct kited_config *c = &n->cfg;
	struct rte_mempool *rx_pools[KITE_MAX_WORKERS];
	int sockets[KITE_MAX_WORKERS];
	struct kite_port_conf pc;
	struct kite_port_info pi;
	struct rte_eth_link link;
	char err[200];
	uint16_t nq = (uint16_t)c->workers;
	int rc;

	for (uint16_t q = 0; q < nq; q++) {
		unsigned int p = (unsigned int)n->place.worker_pool[q];

		/* Descriptor rings next to the worker that polls them. */
		sockets[q] = n->place.pools[p];
		rx_pools[q] = n->rx_pools[p] ? n->rx_pools[p] : n->pools[p];
	}
	memset(&pc, 0, sizeof(pc));
	pc.queues = nq;
	pc.mtu = (uint16_t)c->mtu;
	pc.rx_desc = (uint16_t)c->rx_desc;
	pc.tx_desc = (uint16_t)c->tx_desc;
	pc.rx_csum = true;
	pc.rss = true;
	/*
	 * Fast free needs refcnt 1 and one pool per TX queue: handoff shares
	 * mbufs by refcnt, and with big RX mbufs (rx-mbuf-size) an in-place
	 * reply leaves in an RX-pool mbuf beside TX-pool ones.
	 */
	pc.fast_free = nq == 1 && n->rx_pools[n->place.worker_pool[0]] == NULL;
	pc.rx_pools = rx_pools;
	pc.sockets = sockets;
	rc = check_frame_size(n);
	if (rc != 0)
		return rc;
	rc = kite_port_start(n->port, &pc, &pi, err, sizeof(err));
	if (pi.mtu_error != 0) {
		KLOG(WARNING, "port %u: MTU %u refused (%s); using %u", n->port, c->mtu,
		     rte_strerror(-pi.mtu_error), pi.mtu);
		/* Replies are cut to the MTU the port took, not the one asked for. */
		n->max_payload = (uint16_t)(pi.mtu - 20 - 8);
		n->netconf.mtu = pi.mtu;
	}
	if (rc != 0) {
		KLOG(ERR, "%s", err);
		return rc;
	}
	n->port_started = true;
	rc = rte_eth_macaddr_get(n->port, &n->mac);
	if (rc != 0)
		return rc;
	n->netconf.rx_l4_csum_offload = pi.rx_l4_csum;
	n->netconf.rx_ip_csum_offload = pi.rx_ip_csum;
	n->netconf.tx_csum_offload = pi.tx_csum;
	rc = neighbours_setup(n, pi.driver);
	if (rc != 0)
		return rc;
	rc = steering_setup(n, pi.driver, pi.max_rx_queues, pi.rss);
	if (rc != 0)
		return rc;
	rte_eth_link_get_nowait(n->port, &link);
	KLOG(INFO,
	     "port %u (%s) " RTE_ETHER_ADDR_PRT_FMT ": %u queue(s), %u/%u descriptors, link %s, "
	     "csum offload rx %s tx %s, steering %s",
	     n->port, pi.driver, RTE_ETHER_ADDR_BYTES(&n->mac), nq, pi.rx_desc, pi.tx_desc,
	     link.link_status ? "up" : "down", pi.rx_l4_csum ? "on" : "off",
	     pi.tx_csum ? "on" : "off", kite_steer_mode_name(n->steer));
	return 0;
}

static void
port_close(struct node *n)
{
	if (!n->port_started)
		return;
	steering_teardown(n);
	rte_eth_dev_stop(n->port);
	rte_eth_dev_close(n->port);
	n->port_started = false;
}

/* NUMA: one mbuf pool per socket that runs workers; partitions with their owners. */
static int
place_and_create_pools(struct node *n, const unsigned int *lcores)
{
	uint16_t room = kited_mbuf_room(&n->cfg);
	uint16_t priv = RTE_ALIGN_CEIL(sizeof(struct handoff_meta), RTE_MBUF_PRIV_ALIGN);
	int sockets[KITE_MAX_WORKERS], port_socket = rte_eth_dev_socket_id(n->port);
	char name[RTE_MEMPOOL_NAMESIZE], plan[160];

	for (unsigned int i = 0; i < n->n_workers; i++)
		sockets[i] = (int)rte_lcore_to_socket_id(lcores[i]);
	if (kited_numa_place(&n->map, sockets, port_socket, &n->place) != 0)
		return -EINVAL;
	if (n->place.remote > 0)
		KLOG(WARNING,
		     "%u worker(s) run on another NUMA socket than port %u (socket %d): every "
		     "packet crosses the interconnect; pick lcores on socket %d",
		     n->place.remote, n->port, port_socket, port_socket);
	kited_memory_plan(&n->cfg, n->place.n_pools,
			  rte_eal_has_hugepages() ? 0 : (size_t)sysconf(_SC_PAGESIZE), &n->mem);
	kited_memory_describe(&n->mem, plan, sizeof(plan));
	if (n->mem.total > kited_memory_available())
		KLOG(WARNING,
		     "memory: this configuration needs %s of DPDK memory, more than the %.0f MiB "
		     "free: it will probably not start (%s, or lower memory)",
		     plan, (double)kited_memory_available() / (1 << 20),
		     rte_eal_has_hugepages() ? "reserve more hugepages" : "raise -m");
	else
		KLOG(INFO, "memory: this configuration needs %s of DPDK memory; %.0f MiB free",
		     plan, (double)kited_memory_available() / (1 << 20));
	for (unsigned int i = 0; i < n->place.n_pools; i++) {
		snprintf(name, sizeof(name), "kite_pool_s%d", n->place.pools[i]);
		n->pools[i] = rte_pktmbuf_pool_create(name, n->cfg.mbufs, 256, priv, room,
						      n->place.pools[i]);
		if (n->pools[i] == NULL) {
			snprintf(plan, sizeof(plan), "the pool of %u packet mbufs on socket %d",
				 n->cfg.mbufs, n->place.pools[i]);
			kited_no_memory(&n->mem, plan);
			return -ENOMEM;
		}
		if (!kited_rx_pool_needed(&n->cfg))
			continue;
		/*
		 * Ports that hand over whole frames larger than the MTU (af_packet
		 * after the kernel reassembled a datagram) need big RX mbufs; only
		 * the RX rings and the bursts in flight use them, so few suffice.
		 */
		unsigned int nrx = kited_rx_mbufs(&n->cfg);
		snprintf(name, sizeof(name), "kite_rx_s%d", n->place.pools[i]);
		n->rx_pools[i] = rte_pktmbuf_pool_create(
			name, nrx, 64, priv,
			(uint16_t)(RTE_PKTMBUF_HEADROOM + n->cfg.rx_mbuf_size),
			n->place.pools[i]);
		if (n->rx_pools[i] == NULL) {
			snprintf(plan, sizeof(plan),
				 "the pool of %u RX mbufs of %" PRIu64 " bytes on socket %d", nrx,
				 n->cfg.rx_mbuf_size, n->place.pools[i]);
			kited_no_memory(&n->mem, plan);
			return -ENOMEM;
		}
	}
	return 0;
}

static int
create_partitions(struct node *n)
{
	struct kite_store_params p;
	char name[32];

	n->n_parts = n->map.partitions;
	n->parts = rte_zmalloc("kite_parts", sizeof(*n->parts) * n->n_parts, 0);
	if (n->parts == NULL) {
		kited_no_memory(&n->mem, "the partition table");
		return -ENOMEM;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	const uint64_t cas_seed = ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000) >> 4;
	for (unsigned int i = 0; i < n->n_parts; i++) {
		snprintf(name, sizeof(name), "kite_p%u", i);
		memset(&p, 0, sizeof(p));
		p.name = name;
		/* NUMA-local: the partition lives where its owner runs. */
		p.socket_id = n->place.part_socket[i];
		p.mem_bytes = n->cfg.memory / n->n_parts;
		p.max_item_size = (uint32_t)n->cfg.max_item_size;
		p.id = (uint16_t)i;
		p.no_prefetch = (n->ablate & KITED_ABLATE_PREFETCH) != 0;
		/*
		 * CAS values do not repeat across restarts: the sequence starts
		 * at the clock in 16 us units (48 bits last until 2112), which a
		 * partition would have to outrun at 62,500 new CAS values a second
		 * over its whole life to reach the next start's.
		 */
		p.cas_seed = cas_seed;
		n->parts[i] = kite_store_create(&p);
		if (n->parts[i] == NULL && rte_errno == ENOMEM) {
			snprintf(name, sizeof(name), "partition %u", i);
			kited_no_memory(&n->mem, name);
			return -ENOMEM;
		}
		if (n->parts[i] == NULL) {
			KLOG(ERR, "partition %u (%" PRIu64 " bytes, socket %d): %s", i, p.mem_bytes,
			     p.socket_id, rte_strerror(rte_errno));
			return -rte_errno;
		}
	}
	return 0;
}

static void
node_free(struct node *n)
{
	if (n->workers != NULL) {
		for (unsigned int i = 0; i < n->n_workers; i++) {
			worker_teardown(&n->workers[i]);
			rte_free(n->workers[i].stats);
			rte_free(n->workers[i].hot);
		}
		rte_free(n->workers);
	}
	if (n->parts != NULL) {
		for (unsigned int i = 0; i < n->n_parts; i++)
			kite_store_free(n->parts[i]);
		rte_free(n->parts);
	}
	rte_free(n->wstats);
	rte_free(n->hot);
	rte_free(n->nets);
	kite_neigh_free(n->neigh);
	port_close(n);
	for (unsigned int i = 0; i < n->place.n_pools; i++) {
		rte_mempool_free(n->pools[i]);
		rte_mempool_free(n->rx_pools[i]);
	}
}

/* Assign lcores: worker lcores in EAL order; none at all means the main lcore. */
static int
assign_lcores(struct node *n, unsigned int *lcores)
{
	unsigned int lc, k = 0;

	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (k < n->n_workers)
			lcores[k++] = lc;
	}
	if (k == n->n_workers)
		return 0;
	if (k == 0 && n->n_workers == 1) {
		n->main_runs_worker = true;
		lcores[0] = rte_get_main_lcore();
		return 0;
	}
	KLOG(ERR, "%u workers need %u worker lcores; EAL gave %u (use -l with %u+1 cores)",
	     n->n_workers, n->n_workers, k, n->n_workers);
	return -EINVAL;
}

/*
 * The main lcore's loop: the control work, and worker 0 when EAL gave no
 * worker lcore (-l with one core); otherwise it naps between control turns.
 */
static void
main_loop(struct node *n)
{
	struct worker_idle st;
	uint64_t leave_by = 0;

	worker_idle_init(n, &st);

	n->last_stats_tsc = st.last_tick;
	if (n->main_runs_worker) {
		rte_rcu_qsbr_thread_online(n->cpub.qs, 0);
		kite_port_unmap_self(0);
	}
	while (!n->quit) {
		if (n->hup_req) {
			n->hup_req = false;
			kited_cluster_reload(n);
			kited_guard_reload(n);
		}
		if (n->stop_req && leave_by == 0) {
			/* Leave the cluster gracefully (time-bounded), serving meanwhile. */
			kited_cluster_leave(n);
			leave_by = rte_rdtsc() + (uint64_t)(n->cfg.leave_grace + KITED_LEAVE_SLACK_S) * n->tsc_hz;
		}
		if (leave_by != 0 && (kited_cluster_left(n) || rte_rdtsc() > leave_by)) {
			if (!kited_cluster_left(n))
				KLOG(WARNING, "cluster: leave not finished in %u s; stopping anyway",
				     n->cfg.leave_grace + KITED_LEAVE_SLACK_S);
			n->quit = true;
			break;
		}
		control_tick(n);
		kited_guard_tick(n);
		if (n->main_runs_worker)
			worker_iterate(&n->workers[0], &st);
		else
			usleep(leave_by != 0 ? 10 * 1000 : 100 * 1000);
	}
	if (n->main_runs_worker) {
		kite_port_unmap_self(RTE_QSBR_THRID_INVALID);
		rte_rcu_qsbr_thread_offline(n->cpub.qs, 0);
	}
}

int
main(int argc, char **argv)
{
	struct node *n = &node;
	struct kited_numa_report numa;
	unsigned int lcores[KITE_MAX_WORKERS];
	char err[512];
	int ret, rc = 1;

	/* --version on either side of "--", before EAL would refuse it. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--version") == 0) {
			printf("kited %s (%s)\n", KITE_VERSION, rte_version());
			return 0;
		}
	/*
	 * Kite's options (after "--") are read before EAL starts, so --help,
	 * --describe-config and configuration errors need no hugepages, ports
	 * or root.
	 */
	int sep = argc;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			sep = i;
			break;
		}
	char **kargv = argv + sep;
	int kargc = argc - sep;
	if (kargc == 0) {
		/* No "--": only EAL options; `kited --help` shows both usages. */
		static char *none[] = { (char *)"kited", NULL };
		kargv = none;
		kargc = 1;
	}
	kargv[0] = (char *)"kited";
	rte_set_application_usage_hook(usage_hook);
	switch (kited_config_parse_args(&n->cfg, kargc, kargv, stdout, err, sizeof(err))) {
	case KITED_PARSE_EXIT:
		return 0;
	case KITED_PARSE_ERROR:
		fprintf(stderr, "kited: %s\n", err);
		return 2;
	case KITED_PARSE_RUN:
		break;
	}
	if (check_pid_file(n->cfg.pid_file) != 0)
		return 2;
	/* The user to become, known before anything starts. */
	struct kited_user user = { 0 };
	if (n->cfg.user[0] != '\0' && kited_user_lookup(n->cfg.user, &user, err, sizeof(err)) != 0) {
		fprintf(stderr, "kited: %s\n", err);
		return 2;
	}

	ret = rte_eal_init(sep, argv);
	if (ret < 0) {
		eal_failed(sep, argv);
		return 2;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	n->tsc_hz = rte_get_tsc_hz();
	/* idle-sleep-us = 0 has meant busy polling since before the idle option. */
	n->idle_mode = n->cfg.idle_sleep_us == 0 ? KITED_IDLE_BUSY
						 : (uint8_t)kite_conf_choice(KITED_IDLE_MODES, n->cfg.idle);
	n->idle_spin_tsc = (uint64_t)n->cfg.idle_spin_us * n->tsc_hz / 1000000;
	n->start_tsc = rte_rdtsc();
	n->started = (uint32_t)time(NULL);
	n->n_workers = n->cfg.workers;
	n->map.workers = (uint16_t)n->cfg.workers;
	n->map.partitions = n->cfg.workers * n->cfg.partitions;
	n->map.base_port = (uint16_t)n->cfg.udp_port;
	/* UDP payload of a reply datagram: MTU less IPv4 and UDP headers. */
	n->max_payload = (uint16_t)(n->cfg.mtu - 20 - 8);

	n->netconf.ip = n->cfg.ip;
	n->netconf.netmask = n->cfg.netmask;
	n->netconf.udp_port = (uint16_t)n->cfg.udp_port;
	n->netconf.udp_ports = (uint16_t)n->map.partitions;
	n->netconf.mtu = (uint16_t)n->cfg.mtu;
	n->netconf.frag_max_flows = n->cfg.frag_flows;
	n->netconf.frag_timeout_ms = n->cfg.frag_timeout_ms;
	n->netconf.tx_udp_csum_off = !n->cfg.udp_checksum;
	n->ablate = (unsigned int)kited_ablate_parse(n->cfg.ablate); /* validated with the config */
	if (n->ablate != 0)
		KLOG(WARNING, "data-path steps turned off for measurement (ablate): %s",
		     n->cfg.ablate);

	n->workers = rte_zmalloc("kite_workers", sizeof(*n->workers) * n->n_workers,
				 RTE_CACHE_LINE_SIZE);
	n->wstats = rte_zmalloc("kite_wstats", sizeof(*n->wstats) * n->n_workers, 0);
	n->hot = rte_zmalloc("kite_hots", sizeof(*n->hot) * n->n_workers, 0);
	n->nets = rte_zmalloc("kite_nets", sizeof(*n->nets) * n->n_workers, 0);
	if (n->workers == NULL || n->wstats == NULL || n->hot == NULL || n->nets == NULL) {
		kited_no_memory(&n->mem, "the workers' state");
		goto out;
	}
	if (assign_lcores(n, lcores) != 0)
		goto out;
	for (unsigned int i = 0; i < n->n_workers; i++)
		n->workers[i].lcore = lcores[i];
	if (port_resolve(n) != 0 || place_and_create_pools(n, lcores) != 0 || port_open(n) != 0)
		goto out;
	n->netconf.mac = n->mac;
	if (create_partitions(n) != 0)
		goto out;
	kited_numa_check(n->parts, n->n_parts, &n->place, &n->map, &numa);

	n->stats_src.n_workers = n->n_workers;
	n->stats_src.workers = n->wstats;
	n->stats_src.hot = n->hot;
	n->stats_src.nets = n->nets;
	n->stats_src.n_parts = n->n_parts;
	n->stats_src.parts = n->parts;
	n->stats_src.started = n->started;
	n->stats_src.limit_maxbytes = n->cfg.memory;
	n->stats_src.max_item_size = (uint32_t)n->cfg.max_item_size;
	n->stats_src.udp_port = (uint16_t)n->cfg.udp_port;
	n->stats_src.tsc_hz = rte_get_tsc_hz();
	n->stats_src.steer_mode = kite_steer_mode_name(n->steer);
	n->stats_src.more = kited_cluster_emit_stats;
	n->stats_src.more_arg = n;
	if (kited_guard_setup(n) != 0)
		goto out;
	for (unsigned int i = 0; i < n->n_workers; i++) {
		if (worker_setup(n, &n->workers[i], (uint16_t)i, lcores[i]) != 0)
			goto out;
		n->wstats[i] = n->workers[i].stats;
		n->hot[i] = n->workers[i].hot;
		n->nets[i] = n->workers[i].net;
	}
	/* Replication state before the first map: views refer to it. */
	n->repl_tx = worker_tx;
	n->repl_reply = worker_reply;
	n->repl_relay = worker_relay;
	n->repl_relay_drop = worker_relay_drop;
	if (kited_repl_setup(n) != 0) {
		KLOG(ERR, "replication: cannot start (see above)");
		goto out;
	}
	/* The first map (and, with etcd, the registration) before serving. */
	if (kited_cluster_start(n) != 0) {
		KLOG(ERR, "cluster: cannot start (see above)");
		goto out;
	}
	/* The admin endpoint (its files read while still root; its own thread). */
	if (kited_admin_start(n, err, sizeof(err)) != 0) {
		KLOG(ERR, "%s", err);
		goto out;
	}
	if (write_pid_file(n->cfg.pid_file) != 0)
		goto out;
	/* Everything that needs root is done: give it up, then close system calls. */
	if (n->cfg.user[0] != '\0') {
		if (kited_drop_root(&user, err, sizeof(err)) != 0) {
			KLOG(ERR, "%s", err);
			goto out;
		}
		KLOG(INFO, "running as %s (uid %u, gid %u), no capabilities", user.name,
		     (unsigned int)user.uid, (unsigned int)user.gid);
	} else if (geteuid() == 0) {
		KLOG(WARNING, "running as root: set user (docs/security.rst) to give it up once "
			      "set up");
	}
	if (n->cfg.seccomp) {
		if (kited_seccomp_install(err, sizeof(err)) != 0) {
			KLOG(ERR, "%s", err);
			goto out;
		}
		KLOG(INFO, "seccomp filter on: exec, ptrace, modules, mount, namespaces, bpf and "
			   "the like refused");
	}

	KLOG(INFO,
	     "serving %u partition(s) on UDP %u-%u with %u worker(s), %" PRIu64
	     " bytes of item memory, max item %" PRIu64 " bytes",
	     n->n_parts, n->cfg.udp_port, n->cfg.udp_port + n->n_parts - 1, n->n_workers,
	     n->cfg.memory, n->cfg.max_item_size);
	KLOG(INFO, "memory: %.0f MiB of DPDK memory in use (planned %.0f MiB)",
	     (double)kited_memory_in_use() / (1 << 20), (double)n->mem.total / (1 << 20));
	control_telemetry(n);
	/* Operators and tests wait for this line. */
	printf("kited: ready\n");
	fflush(stdout);

	if (!n->main_runs_worker)
		for (unsigned int i = 0; i < n->n_workers; i++)
			rte_eal_remote_launch(worker_main, &n->workers[i], lcores[i]);
	main_loop(n);
	rte_eal_mp_wait_lcore();
	/* The last line's rates are over the time since the one before, however short. */
	control_log_stats(n, (double)(rte_rdtsc() - n->last_stats_tsc) / (double)n->tsc_hz);
	KLOG(INFO, "stopping");
	rc = 0;
out:
	n->quit = true;
	rte_eal_mp_wait_lcore();
	kited_admin_stop();
	kited_cluster_stop(n);
	kited_repl_free(n);
	control_telemetry(NULL);
	node_free(n);
	kited_guard_free(n);
	if (n->cfg.pid_file[0] != '\0' && rc == 0)
		unlink(n->cfg.pid_file);
	rte_eal_cleanup();
	return rc;
}
