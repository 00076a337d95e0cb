// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmd: the pool daemon of pre-spawned warmfork instances (docs/warmd.md).
 *
 *   warmd [--socket PATH] [--group GROUP] [--mode OCTAL] [--allow-uid USER]
 *         [--store DIR] [--max-conns N] [-v]
 *
 * Clients (libwarmfork, lib/include/warmfork.h) register snapshots of the
 * store as pools; warmd keeps each pool's idle instances parked (created
 * from a template restored once, not running yet) and starts one per
 * acquire with the descriptors the client passes. Who may connect: the
 * socket's mode and group decide who can reach it at all, then the peer's
 * credentials: root, --allow-uid, or a member of --group.
 *
 * warmd is a child subreaper: every template, init and instance is its
 * (grand)child, and it reaps them all; on SIGTERM/SIGINT it kills every
 * instance, reaps, removes its socket and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "warmfork.h"
#include "warmd.h"

struct wd_state wd;

int wd_epoll_add(int fd, uint32_t events, struct wd_watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(wd.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void wd_epoll_del(int fd)
{
	epoll_ctl(wd.epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: warmd [--socket PATH] [--group GROUP] [--mode OCTAL] [--allow-uid USER]\n"
		   "             [--store DIR] [--max-conns N] [-v]\n"
		   "  --socket PATH     listen here (default %s)\n"
		   "  --group GROUP     the socket's group; its members may use warmd\n"
		   "  --mode OCTAL      the socket's mode (default 0660)\n"
		   "  --allow-uid USER  this user may use warmd too (besides root)\n"
		   "  --store DIR       the store whose snapshots pools run (default: warmfork's)\n"
		   "  --max-conns N     connections at once (default 1024)\n",
		WF_DEFAULT_SOCKET);
}

static int parse_group(const char *s, gid_t *ret)
{
	struct group *g = getgrnam(s);
	char *end;
	unsigned long v;

	if (g) {
		*ret = g->gr_gid;
		return 0;
	}
	v = strtoul(s, &end, 10);
	if (!*s || *end || v >= (gid_t)-1)
		return -EINVAL;
	*ret = (gid_t)v;
	return 0;
}

static int parse_user(const char *s, uid_t *ret)
{
	struct passwd *pw = getpwnam(s);
	char *end;
	unsigned long v;

	if (pw) {
		*ret = pw->pw_uid;
		return 0;
	}
	v = strtoul(s, &end, 10);
	if (!*s || *end || v >= (uid_t)-1)
		return -EINVAL;
	*ret = (uid_t)v;
	return 0;
}

/*
 * Bind the listening socket at @path with @mode and @group. A socket file
 * left by a dead warmd is replaced; one that answers is another warmd.
 */
static int listen_at(const char *path, mode_t mode, gid_t group)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	char dir[sizeof(sa.sun_path)], tmp[sizeof(sa.sun_path) + 16];
	struct stat st;
	mode_t old;
	char *slash;
	int r;

	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return err_set(ENAMETOOLONG, "socket path \"%s\" is too long", path);
	strcpy(sa.sun_path, path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		r = mkdir_p(dir, 0755);
		if (r < 0)
			return err_set(-r, "cannot create \"%s\": %s", dir, strerror(-r));
	}
	if (lstat(path, &st) == 0) {
		_cleanup_close_ int probe = -1;

		if (!S_ISSOCK(st.st_mode))
			return err_set(EEXIST, "\"%s\" exists and is not a socket", path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return err_set(EADDRINUSE, "another warmd listens on \"%s\"", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(errno, "socket: %m");
	/*
	 * Bound and listening under a temporary name, then renamed into place:
	 * whoever sees @path can connect. Created owner-only, then opened up
	 * to @mode: never wider meanwhile.
	 */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d", path, getpid()) >= sizeof(sa.sun_path))
		return err_set(ENAMETOOLONG, "socket path \"%s\" is too long", path);
	strcpy(sa.sun_path, tmp);
	unlink(tmp);
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return err_set(errno, "cannot bind \"%s\": %m", tmp);
	if ((group != (gid_t)-1 && chown(tmp, (uid_t)-1, group) < 0) || chmod(tmp, mode) < 0) {
		r = err_set(errno, "cannot set the owner or mode of \"%s\": %m", tmp);
		unlink(tmp);
		return r;
	}
	if (listen(fd, 128) < 0 || rename(tmp, path) < 0) {
		r = err_set(errno, "cannot listen on \"%s\": %m", path);
		unlink(tmp);
		return r;
	}
	return TAKE_FD(fd);
}

/* After the pool threads ended (their parked instances released): every
 * instance was killed; reap them all, and then whatever else is left of our
 * children. */
static void reap_everything(void)
{
	struct wd_list *ppos, *ptmp, *pos, *tmp;
	uint64_t deadline;

	/* Starts finished meanwhile: nobody to answer. */
	wd_list_for_each_safe(pos, tmp, &wd.done_jobs) {
		struct wd_job *j = wd_container_of(pos, struct wd_job, link);

		wd_list_del(&j->link);
		j->in->starting = false;
		for (size_t i = 0; i < j->nr_fds; i++)
			close(j->fds[i]);
		free(j);
	}
	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);
		struct wd_list *lists[] = { &p->idle, &p->busy, &p->release_q };

		for (size_t k = 0; k < ARRAY_SIZE(lists); k++)
			wd_list_for_each_safe(pos, tmp, lists[k]) {
				struct wd_inst *in = wd_container_of(pos, struct wd_inst, link);
				siginfo_t si;

				if (!in->reaped && in->e.init > 0) {
					kill(in->e.init, SIGKILL);
					while (waitid(P_PID, in->e.init, &si, WEXITED) < 0 &&
					       errno == EINTR)
						;
				}
				wd_list_del(&in->link);
				wd_inst_free(in);
			}
		wd_list_del(&p->link);
		pthread_cond_destroy(&p->cond);
		free(p);
	}
	/* No engine call runs any more: waiting for any child is safe now. */
	deadline = now_ns() + 5000000000ull;
	while (now_ns() < deadline) {
		pid_t w = waitpid(-1, NULL, WNOHANG);

		if (w < 0 && errno == ECHILD)
			break;
		if (w <= 0)
			usleep(10000);
	}
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket",	required_argument,	NULL, 's' },
		{ "group",	required_argument,	NULL, 'g' },
		{ "mode",	required_argument,	NULL, 'm' },
		{ "allow-uid",	required_argument,	NULL, 'u' },
		{ "store",	required_argument,	NULL, 'S' },
		{ "max-conns",	required_argument,	NULL, 'c' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "help",	no_argument,		NULL, 'h' },
		{}
	};
	struct wc_store_opts so = { .sz = sizeof(so) };
	struct wd_watch w_listen = { WD_WATCH_LISTEN, NULL }, w_event = { WD_WATCH_EVENT, NULL },
			w_sig = { WD_WATCH_SIGNAL, NULL };
	char store_dir[4096], snaps[4200];
	int c, r, lfd = -1, sfd = -1;
	sigset_t mask;
	char *end;

	log_prog = "warmd";
	wd.opts = (struct wd_opts){
		.socket_path = WF_DEFAULT_SOCKET, .mode = 0660, .group = (gid_t)-1,
		.allow_uid = (uid_t)-1, .max_conns = 1024,
	};
	while ((c = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			wd.opts.socket_path = optarg;
			break;
		case 'g':
			if (parse_group(optarg, &wd.opts.group) < 0) {
				log_error("no group \"%s\"", optarg);
				return 2;
			}
			break;
		case 'm':
			wd.opts.mode = (mode_t)strtoul(optarg, &end, 8);
			if (!*optarg || *end || wd.opts.mode > 0777) {
				log_error("--mode takes an octal mode, not \"%s\"", optarg);
				return 2;
			}
			break;
		case 'u':
			if (parse_user(optarg, &wd.opts.allow_uid) < 0) {
				log_error("no user \"%s\"", optarg);
				return 2;
			}
			break;
		case 'S':
			wd.opts.store_dir = optarg;
			break;
		case 'c':
			wd.opts.max_conns = (unsigned int)strtoul(optarg, &end, 10);
			if (!*optarg || *end || !wd.opts.max_conns || wd.opts.max_conns > 65536) {
				log_error("--max-conns takes 1..65536, not \"%s\"", optarg);
				return 2;
			}
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	pthread_mutex_init(&wd.lock, NULL);
	pthread_cond_init(&wd.kick, NULL);
	wd_list_init(&wd.pools);
	wd_list_init(&wd.conns);
	wd_list_init(&wd.done_jobs);
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		log_error("cannot become a child subreaper: %m");
		return 1;
	}
	/* Blocked in every thread (the threads inherit the mask); main reads them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	err_clear();
	r = wc_store_default_dir(wd.opts.store_dir, store_dir, sizeof(store_dir));
	if (r >= 0)
		r = wc_store_open(store_dir, WC_OPEN_RDONLY, &so, &wd.store);
	if (r < 0) {
		log_error("cannot open the store: %s", err_str(r));
		return 1;
	}
	snprintf(snaps, sizeof(snaps), "%s/snapshots", wc_store_dir(wd.store));
	wd.snaps_fd = open(snaps, O_PATH | O_DIRECTORY | O_CLOEXEC);
	wd.epfd = epoll_create1(EPOLL_CLOEXEC);
	wd.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (wd.snaps_fd < 0 || wd.epfd < 0 || wd.event_fd < 0 || sfd < 0) {
		log_error("setup (\"%s\", epoll, eventfd, signalfd): %m", snaps);
		return 1;
	}
	err_clear();
	lfd = listen_at(wd.opts.socket_path, wd.opts.mode, wd.opts.group);
	if (lfd < 0) {
		log_error("%s", err_str(lfd));
		return 1;
	}
	if (wd_epoll_add(lfd, EPOLLIN, &w_listen) < 0 ||
	    wd_epoll_add(wd.event_fd, EPOLLIN, &w_event) < 0 ||
	    wd_epoll_add(sfd, EPOLLIN, &w_sig) < 0) {
		log_error("epoll: %m");
		unlink(wd.opts.socket_path);
		return 1;
	}
	r = wd_worker_start();
	if (r < 0) {
		log_error("%s", err_str(r));
		unlink(wd.opts.socket_path);
		return 1;
	}
	log_info("listening on \"%s\" (mode %04o), store \"%s\"", wd.opts.socket_path,
		 (unsigned)wd.opts.mode, wc_store_dir(wd.store));

	for (;;) {
		struct epoll_event evs[64];
		uint64_t next = wd_pool_next_deadline(), now = now_ns();
		int timeout = -1, n;
		bool stop = false;

		if (next != UINT64_MAX)
			timeout = next <= now ? 0 : (int)MIN((next - now) / 1000000 + 1, 60000);
		n = epoll_wait(wd.epfd, evs, ARRAY_SIZE(evs), timeout);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait: %m");
			break;
		}
		for (int i = 0; i < n; i++) {
			struct wd_watch *w = evs[i].data.ptr;

			switch (w->kind) {
			case WD_WATCH_LISTEN:
				wd_conn_accept(lfd);
				break;
			case WD_WATCH_CONN:
				wd_conn_event(w->obj, evs[i].events);
				break;
			case WD_WATCH_INST:
				wd_pool_inst_event(w->obj);
				break;
			case WD_WATCH_EVENT:
				wd_pool_worker_event();
				break;
			case WD_WATCH_SIGNAL: {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					log_info("signal %u: stopping", si.ssi_signo);
					stop = true;
				}
				break;
			}
			case WD_WATCH_TIMER:
				break;
			}
		}
		wd_pool_timer();
		wd_conn_free_buried();
		if (stop)
			break;
	}

	close(lfd);
	unlink(wd.opts.socket_path);
	wd_pool_shutdown();
	wd_conn_close_all();
	wd_conn_free_buried();
	wd_worker_stop();
	reap_everything();
	wc_store_close(wd.store);
	log_info("stopped");
	return 0;
}
