// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-inotify: inotify watches across the cut, with their numbers.
 *   fd 10  inotify (IN_NONBLOCK, close-on-exec) watching
 *          wd 1  $CR_DIR/watched   IN_CREATE|IN_DELETE
 *          wd 2  $CR_DIR/file      IN_MODIFY
 *          wd 3  (added on $CR_DIR and removed: a hole)
 *          wd 4  $CR_DIR/file2     IN_ATTRIB|IN_ONESHOT
 *   fd 11  a dup of fd 10
 * After go (queue empty at the cut): creating a file in watched/ gives
 * IN_CREATE with wd 1 and its name, writing file gives IN_MODIFY on wd 2,
 * chmod of file2 gives IN_ATTRIB on wd 4 (then IN_IGNORED: one-shot);
 * removing wd 3 fails with EINVAL, wd 2 succeeds through fd 11; the next
 * watch added gets wd 5.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

static volatile uint32_t wds[3] = { 1, 2, 4 };
static char dir[PATH_MAX], file[PATH_MAX], file2[PATH_MAX], other[PATH_MAX];

/* Next event of fd 10 (waits up to 1 s). */
static int next_event(struct inotify_event *ev, char *name, size_t len)
{
	static char buf[8192];
	static size_t have, off;

	for (int i = 0; i < 1000 && off >= have; i++) {
		ssize_t n = read(10, buf, sizeof(buf));

		if (n > 0) {
			have = (size_t)n;
			off = 0;
			break;
		}
		cr_sleep_ms(1);
	}
	if (off >= have)
		return -1;
	memcpy(ev, buf + off, sizeof(*ev));
	snprintf(name, len, "%s", ev->len ? buf + off + sizeof(*ev) : "");
	off += sizeof(*ev) + ev->len;
	return 0;
}

static void expect(uint32_t wd, uint32_t mask, const char *name, const char *what)
{
	struct inotify_event ev = {};
	char n[256] = "";

	cr_check(next_event(&ev, n, sizeof(n)) == 0 && (uint32_t)ev.wd == wd && (ev.mask & mask) &&
		 strcmp(n, name) == 0, "%s: event wd %d mask %#x name \"%s\", expected wd %u mask "
		 "%#x \"%s\"", what, ev.wd, ev.mask, n, wd, mask, name);
}

int main(int argc, char **argv)
{
	char buf[4096];
	int fd, w, w3;

	cr_init(argc, argv);
	snprintf(dir, sizeof(dir), "%s/watched", cr_dir());
	snprintf(file, sizeof(file), "%s/file", cr_dir());
	snprintf(file2, sizeof(file2), "%s/file2", cr_dir());
	snprintf(other, sizeof(other), "%s/other", cr_dir());
	if (mkdir(dir, 0700) < 0 || (fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) < 0)
		cr_fail("setup: %m");
	close(fd);
	if ((fd = open(file2, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) < 0 ||
	    close(fd) < 0 || (fd = open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) < 0)
		cr_fail("setup: %m");
	close(fd);
	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 || dup3(fd, 10, O_CLOEXEC) < 0 ||
	    dup3(fd, 11, O_CLOEXEC) < 0)
		cr_fail("inotify: %m");
	close(fd);
	if ((w = inotify_add_watch(10, dir, IN_CREATE | IN_DELETE)) != 1 ||
	    (w = inotify_add_watch(10, file, IN_MODIFY)) != 2 ||
	    (w3 = inotify_add_watch(10, cr_dir(), IN_CREATE)) != 3 ||
	    inotify_rm_watch(10, w3) < 0 ||
	    (w = inotify_add_watch(10, file2, IN_ATTRIB | IN_ONESHOT)) != 4)
		cr_fail("inotify_add_watch: got %d: %m", w);
	while (read(10, buf, sizeof(buf)) > 0)	/* the IN_IGNORED of wd 3 */
		;

	cr_ready_tamper((const void *)wds, sizeof(wds));
	cr_wait();

	cr_check((fcntl(10, F_GETFL) & O_NONBLOCK) && fcntl(10, F_GETFD) == FD_CLOEXEC, "fd 10 flags");
	errno = 0;
	cr_check(read(10, buf, sizeof(buf)) < 0 && errno == EAGAIN, "events queued at go (errno %d)",
		 errno);
	snprintf(buf, sizeof(buf), "%s/newfile", dir);
	fd = open(buf, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_check(fd >= 0, "create: %m");
	expect(wds[0], IN_CREATE, "newfile", "create in watched/");
	fd = open(file, O_WRONLY | O_CLOEXEC);
	cr_check(fd >= 0 && write(fd, "x", 1) == 1, "write file: %m");
	close(fd);
	expect(wds[1], IN_MODIFY, "", "write to file");
	cr_check(chmod(file2, 0644) == 0, "chmod: %m");
	expect(wds[2], IN_ATTRIB, "", "chmod of file2");
	expect(wds[2], IN_IGNORED, "", "one-shot wd 4 removed");
	errno = 0;
	cr_check(inotify_rm_watch(10, 3) < 0 && errno == EINVAL, "wd 3 exists (errno %d)", errno);
	cr_check(inotify_rm_watch(11, (int)wds[1]) == 0, "rm wd %u through fd 11: %m", wds[1]);
	expect(wds[1], IN_IGNORED, "", "wd 2 removed");
	w = inotify_add_watch(10, other, IN_MODIFY);
	cr_check(w == 5, "the next watch got wd %d, expected 5", w);
	cr_check_ids();
	cr_finish();
}
