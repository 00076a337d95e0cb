/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WE_GLUE_H
#define WE_GLUE_H

/*
 * What warm-exec needs from the engine and the store, in its own terms.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <termios.h>

#include "warmcache.h"
#include "record.h"

struct we_save {
	const char *key;		/* hex cache key */
	const char *cmdline;		/* for --list */
	const struct we_record *output;	/* output before readiness */
	const struct termios *tio;	/* the program's terminal modes, or NULL */
	int restore_signal;		/* asked for with X_WARM_EXEC_RESTORE_SIGNAL */
};

/* Checkpoint @pid (killed once saved) into @store. -errno, detail set. */
int we_save(struct wc_store *store, pid_t pid, const struct we_save *save,
	    char ret_id[WC_ID_LEN + 1]);

struct we_loaded {
	void *output;			/* encoded record (record.h), may be NULL */
	size_t output_len;
	bool has_tio;
	struct termios tio;
	int restore_signal;
};
/* Read warm-exec's own blobs of snapshot @id. */
int we_load(struct wc_store *store, const char *id, struct we_loaded *ret);
void we_loaded_fini(struct we_loaded *l);

/*
 * Restore @id in a new pid namespace with the caller's stdio. On success
 * *ret_child is our child to wait for (its exit status is the program's)
 * and *ret_pid the program itself (to send signals to). @resume_signal,
 * if > 0, is pending when the program resumes. -ESTALE: the
 * snapshot no longer matches this machine (a file, the kernel, the CPU
 * changed), with the reason as detail.
 */
int we_restore(struct wc_store *store, const char *id, int resume_signal, pid_t *ret_child,
	       pid_t *ret_pid);

#endif
