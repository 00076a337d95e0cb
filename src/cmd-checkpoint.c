// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork [--store DIR] checkpoint [--leave-running] [--tree] PID
 *
 * Prints the new snapshot id on stdout (one line, nothing else); messages
 * go to stderr; exit 0 only when the snapshot is committed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/user.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "engine.h"
#include "image.pb-c.h"
#include "warmcache.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: warmfork checkpoint [--leave-running] [--tree] [--print-image] PID\n"
		   "  --leave-running  keep the process running after the snapshot\n"
		   "                   (default: kill it once the snapshot is stored)\n"
		   "  --tree           the process and all its descendants (zombies too)\n"
		   "  --tcp-established  capture established TCP connections (TCP_REPAIR)\n"
		   "                   instead of refusing them; the peer must reach this\n"
		   "                   host's address when the copy runs\n"
		   "  --external unix:INO|unix:/PATH|unix:@NAME  accept the peer outside the\n"
		   "                   image of unix socket INO (as the refusal names it), or\n"
		   "                   of the sockets connected to that name; restore connects\n"
		   "                   them to the peer's name again (repeatable)\n"
		   "  --print-image    read the stored image back and print it on stderr\n"
		   "  --dry-run        inspect only: list on stdout every descriptor or mapping\n"
		   "                   that cannot be checkpointed (exit 0: none), change nothing\n"
		   "  --max-unlinked-size BYTES[K|M|G]  largest unlinked-but-open file saved\n"
		   "                   (default 64M)\n");
}

/* files: one line per refused descriptor or mapping. */
struct refusals {
	unsigned nr;
	bool dry_run;
};

static void report_refusal(void *arg, const char *line)
{
	struct refusals *rf = arg;

	rf->nr++;
	if (rf->dry_run)
		printf("%s\n", line);
	else
		log_error("%s", line);
}

static int parse_bytes(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fallthrough */
	case 'M': case 'm': v <<= 10; /* fallthrough */
	case 'K': case 'k': v <<= 10; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (*end || !v)
		return -EINVAL;
	*ret = v;
	return 0;
}

static const char *const vma_kinds[] = {
	"anon-private", "file-private", "file-shared", "anon-shared", "vdso", "vvar",
	"vvar-vclock", "vsyscall",
};
static const char *const fd_kinds[] = {
	"reg", "null", "zero", "urandom", "random", "tty", "pipe", "socket", "stdio", "inet-socket",
	[ENG_FD_KIND__FD_TCP_ESTABLISHED] = "tcp-established",
	[ENG_FD_KIND__FD_FOBJ] = "file-object", [ENG_FD_KIND__FD_PIDFD] = "pidfd",
};
static const char *const fobj_kinds[] = { "memfd", "shm", "unlinked", "sysv" };
static const char *const lock_kinds[] = { "flock", "posix", "ofd" };

/* Debug aid: the image as stored, decoded again, one object per line. */
static int print_image(struct wc_store *store, const char *id)
{
	struct wc_snapshot *snap = NULL;
	const void *data;
	size_t len;
	EngImage *img;
	int r;

	r = wc_snapshot_open(store, id, &snap);
	if (r < 0)
		return r;
	r = wc_snapshot_blob(snap, ENG_IMAGE_BLOB, &data, &len);
	if (r < 0) {
		wc_snapshot_close(snap);
		return r;
	}
	img = eng_image__unpack(NULL, len, data);
	wc_snapshot_close(snap);
	if (!img)
		return -EBADMSG;
	fprintf(stderr, "image v%u kernel %s xcr0 %#" PRIx64 " xsave %u vdso %" PRIu64 " B\n",
		img->version, img->kernel_release ? img->kernel_release : "?",
		img->xfeatures_mask, img->xsave_size, img->vdso_size);
	for (size_t p = 0; p < img->n_procs; p++) {
		const EngProcess *pr = img->procs[p];
		const EngMm *mm = pr->mm;

		if (pr->zombie) {
			fprintf(stderr, "process %u ppid %u pgid %u sid %u zombie, wait status %#x\n",
				pr->pid, pr->ppid, pr->pgid, pr->sid, pr->exit_status);
			continue;
		}
		fprintf(stderr, "process %u ppid %u comm %s pgid %u sid %u umask %03o personality %#x "
			"cwd %s root %s uid %u/%u gid %u/%u capeff %#" PRIx64 "\n",
			pr->pid, pr->ppid, pr->comm ? pr->comm : "?", pr->pgid, pr->sid, pr->umask,
			pr->personality, pr->cwd, pr->root, pr->creds->uid, pr->creds->euid,
			pr->creds->gid, pr->creds->egid, pr->creds->cap_eff);
		fprintf(stderr, "  mm code %#" PRIx64 "-%#" PRIx64 " data %#" PRIx64 "-%#" PRIx64
			" brk %#" PRIx64 "-%#" PRIx64 " stack %#" PRIx64 " auxv %zu B exe %s\n",
			mm->start_code, mm->end_code, mm->start_data, mm->end_data, mm->start_brk,
			mm->brk, mm->start_stack, mm->auxv.len,
			mm->has_exe_file && mm->exe_file < pr->n_files ?
			pr->files[mm->exe_file]->path : "?");
		for (size_t i = 0; i < pr->n_threads; i++) {
			const EngThread *t = pr->threads[i];
			struct user_regs_struct regs = {};

			if (t->regs.len == sizeof(regs))
				memcpy(&regs, t->regs.data, sizeof(regs));
			fprintf(stderr, "  thread %u %-15s rip %#llx rsp %#llx rax %#llx%s mask %#" PRIx64
				" pending %zu xsave %zu B xfeat %#" PRIx64 " altstack %#" PRIx64 "+%" PRIu64
				" rseq %#" PRIx64 " ctid %#" PRIx64 " sched %d/%d nice %d\n",
				t->tid, t->comm ? t->comm : "?", regs.rip, regs.rsp, regs.rax,
				t->in_syscall ? " (rewound syscall)" : "", t->sigmask, t->n_pending,
				t->xsave.len, t->xfeatures, t->ss_sp, t->ss_size, t->rseq_addr,
				t->clear_child_tid, t->sched_policy, t->sched_prio, t->nice);
		}
		for (size_t i = 0; i < pr->n_vmas; i++) {
			const EngVma *v = pr->vmas[i];

			fprintf(stderr, "  vma %#014" PRIx64 "-%#014" PRIx64 " %c%c%c %-12s area %3d "
				"madv %#05x flags %#x %s\n",
				v->start, v->end, v->prot & 1 ? 'r' : '-', v->prot & 2 ? 'w' : '-',
				v->prot & 4 ? 'x' : '-',
				(size_t)v->kind < ARRAY_SIZE(vma_kinds) ? vma_kinds[v->kind] : "?",
				v->area, v->madv, v->map_flags, v->name ? v->name : "");
		}
		for (size_t i = 0; i < pr->n_fds; i++) {
			const EngFd *f = pr->fds[i];

			fprintf(stderr, "  fd %u %s obj %#" PRIx64 " flags %#o%s pos %" PRIu64 " %s\n", f->fd,
				(size_t)f->kind < ARRAY_SIZE(fd_kinds) && fd_kinds[f->kind] ?
				fd_kinds[f->kind] : "?",
				f->obj, f->flags, f->cloexec ? " cloexec" : "", f->pos, f->path ? f->path : "");
			if (f->sock && f->sock->tcp)	/* tcp */
				fprintf(stderr, "    tcp snd_seq %u rcv_seq %u send queue %zu (unsent %u) "
					"receive queue %zu mss %u wnd %u/%u\n", f->sock->tcp->snd_seq,
					f->sock->tcp->rcv_seq, f->sock->tcp->send_queue.len,
					f->sock->tcp->unsent, f->sock->tcp->recv_queue.len,
					f->sock->tcp->mss_clamp, f->sock->tcp->snd_wnd,
					f->sock->tcp->rcv_wnd);
		}
		for (size_t i = 0; i < pr->n_fobjs; i++) {	/* files */
			const EngFobj *o = pr->fobjs[i];

			fprintf(stderr, "  fobj %zu %s \"%s\" %" PRIu64 " B mode %o area %d seals %#x"
				" sysv key %#x id %u%s\n", i,
				(size_t)o->kind < ARRAY_SIZE(fobj_kinds) ? fobj_kinds[o->kind] : "?",
				o->name ? o->name : "", o->size, o->mode, o->area, o->seals,
				(unsigned)o->sysv_key, o->sysv_id, o->sysv_dest ? " dest" : "");
		}
		for (size_t i = 0; i < pr->n_locks; i++) {
			const EngLock *l = pr->locks[i];

			fprintf(stderr, "  lock fd %u %s %s start %" PRIu64 " len %" PRIu64 "\n", l->fd,
				(size_t)l->kind < ARRAY_SIZE(lock_kinds) ? lock_kinds[l->kind] : "?",
				l->write ? "write" : "read", l->start, l->len);
		}
		for (size_t i = 0; i < pr->n_sigactions; i++) {
			const EngSigaction *sa = pr->sigactions[i];

			fprintf(stderr, "  sigaction %u handler %#" PRIx64 " flags %#" PRIx64
				" mask %#" PRIx64 "\n", sa->sig, sa->handler, sa->flags, sa->mask);
		}
		for (size_t i = 0; i < pr->n_itimers; i++)
			fprintf(stderr, "  itimer %u value %" PRIu64 " us interval %" PRIu64 " us\n",
				pr->itimers[i]->which, pr->itimers[i]->value_us,
				pr->itimers[i]->interval_us);
		fprintf(stderr, "  files %zu, rlimits %zu, shared pending %zu\n", pr->n_files,
			pr->n_rlimits, pr->n_shared_pending);
	}
	eng_image__free_unpacked(img, NULL);
	return 0;
}

int cmd_checkpoint(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "leave-running",	no_argument,	NULL, 'l' },
		{ "tree",		no_argument,	NULL, 't' },
		{ "tcp-established",	no_argument,	NULL, 'E' },
		{ "print-image",	no_argument,	NULL, 'p' },
		{ "dry-run",		no_argument,	NULL, 'n' },
		{ "max-unlinked-size",	required_argument, NULL, 'U' },
		{ "external",		required_argument, NULL, 'X' },	/* unix */
		{ "help",		no_argument,	NULL, 'h' },
		{}
	};
	struct eng_dump_stats stats = {};
	struct refusals rf = {};
	struct eng_dump_opts dopts = { .sz = sizeof(dopts), .stats = &stats,
				       .report = report_refusal, .report_arg = &rf };
	struct wc_store *store = NULL;
	struct wc_sink *sink = NULL;
	char id[WC_ID_LEN + 1];
	bool print = false;
	uint64_t unix_ext[64];	/* unix: --external unix:INO */
	const char *unix_ext_names[64];	/* unix: --external unix:/PATH, unix:@NAME */
	int c, r, pid;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			dopts.leave_running = true;
			break;
		case 'p':
			print = true;
			break;
		case 't':
			dopts.tree = true;
			break;
		case 'E':
			dopts.tcp_established = true;
			break;
		case 'n':
			dopts.dry_run = rf.dry_run = true;
			break;
		case 'U':
			if (parse_bytes(optarg, &dopts.max_unlinked_bytes) < 0) {
				log_error("invalid --max-unlinked-size \"%s\"", optarg);
				return 2;
			}
			break;
		case 'X': {
			unsigned long long ino = 0;
			char *end = NULL;

			/* unix:INODE, or unix:/path or unix:@abstract (the peer's name) */
			errno = 0;
			if (strncmp(optarg, "unix:", 5) == 0 && (optarg[5] == '/' || optarg[5] == '@') &&
			    optarg[6] && dopts.nr_unix_external_names < ARRAY_SIZE(unix_ext_names)) {
				unix_ext_names[dopts.nr_unix_external_names++] = optarg + 5;
				dopts.unix_external_names = unix_ext_names;
				break;
			}
			if (strncmp(optarg, "unix:", 5) == 0)
				ino = strtoull(optarg + 5, &end, 10);
			if (!ino || errno || !end || *end ||
			    dopts.nr_unix_external == ARRAY_SIZE(unix_ext)) {
				log_error("invalid --external \"%s\" (unix:INODE, unix:/PATH or unix:@NAME, "
					  "at most %zu each)", optarg, ARRAY_SIZE(unix_ext));
				return 2;
			}
			unix_ext[dopts.nr_unix_external++] = ino;
			dopts.unix_external = unix_ext;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || parse_int(argv[optind], &pid) < 0 || pid <= 0) {
		usage(stderr);
		return 2;
	}

	if (dopts.dry_run) {
		/* files: freeze, inspect /proc, thaw; no store involved. */
		r = eng_checkpoint(pid, NULL, &dopts, id);
		fflush(stdout);
		if (r < 0 && !rf.nr) {
			log_error("dry run of process %d failed: %s", pid, err_str(r));
			return 1;
		}
		if (rf.nr) {
			log_error("process %d cannot be checkpointed: %u unsupported descriptors or "
				  "mappings", pid, rf.nr);
			return 1;
		}
		log_info("process %d can be checkpointed", pid);
		return 0;
	}
	if (cli_open_store(ctx, true, &store) < 0)
		return 1;
	r = wc_store_sink_new(store, &sink);
	if (r < 0) {
		log_error("checkpoint of process %d: cannot start a snapshot in \"%s\": %s", pid,
			  ctx->store_dir, err_str(r));
		wc_store_close(store);
		return 1;
	}
	r = eng_checkpoint(pid, sink, &dopts, id);
	wc_sink_free(sink);
	if (r < 0) {
		if (rf.nr)	/* each one listed above */
			log_error("checkpoint of process %d refused: %u unsupported descriptor(s) "
				  "or mapping(s)", pid, rf.nr);
		else
			log_error("checkpoint of process %d failed: %s", pid, err_str(r));
		wc_store_close(store);
		return 1;
	}
	if (print) {
		r = print_image(store, id);
		if (r < 0)
			log_error("cannot print the image of snapshot %s: %s", id, err_str(r));
	}
	wc_store_close(store);
	printf("%s\n", id);
	if (fflush(stdout) != 0) {
		log_error("cannot write the snapshot id: %s", err_str(-errno));
		return 1;
	}
	if (stats.zombie)
		log_error("warning: process %d was killed but its parent has not reaped it yet",
			  pid);
	log_verbose("checkpoint of process %d: %" PRIu64 " threads, %" PRIu64 " vmas, %" PRIu64
		    " areas, %" PRIu64 " pages read, image %" PRIu64 " bytes",
		    pid, stats.nr_threads, stats.nr_vmas, stats.nr_areas, stats.pages_read,
		    stats.image_bytes);
	log_verbose("timing: freeze %.3f ms, collect %.3f ms, memory %.3f ms, commit %.3f ms, "
		    "release %.3f ms, frozen %.3f ms",
		    stats.freeze_ns / 1e6, stats.collect_ns / 1e6, stats.memory_ns / 1e6,
		    stats.commit_ns / 1e6, stats.release_ns / 1e6, stats.frozen_ns / 1e6);
	return 0;
}
