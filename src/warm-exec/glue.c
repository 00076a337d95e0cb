// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "engine.h"
#include "glue.h"

/* warm-exec's own blobs and labels in the snapshot. */
#define BLOB_OUTPUT	"warm-exec.output"
#define BLOB_TERMIOS	"warm-exec.termios"
#define LABEL_KEY	"warm-exec.key"
#define LABEL_CMD	"warm-exec.cmd"
#define LABEL_SIGNAL	"warm-exec.restore-signal"

int we_save(struct wc_store *store, pid_t pid, const struct we_save *save,
	    char ret_id[WC_ID_LEN + 1])
{
	struct eng_dump_opts opts = { .sz = sizeof(opts) };
	struct wc_sink *sink = NULL;
	char sig[16];
	int r;

	r = wc_store_sink_new(store, &sink);
	if (r < 0)
		return r;
	r = sink->ops->put_label(sink, LABEL_KEY, save->key);
	if (r >= 0)
		r = sink->ops->put_label(sink, LABEL_CMD, save->cmdline);
	if (r >= 0 && save->restore_signal) {
		snprintf(sig, sizeof(sig), "%d", save->restore_signal);
		r = sink->ops->put_label(sink, LABEL_SIGNAL, sig);
	}
	if (r >= 0 && save->output && save->output->len)
		r = sink->ops->put_blob(sink, BLOB_OUTPUT, save->output->buf, save->output->len);
	if (r >= 0 && save->tio)
		r = sink->ops->put_blob(sink, BLOB_TERMIOS, save->tio, sizeof(*save->tio));
	if (r >= 0)
		r = eng_checkpoint(pid, sink, &opts, ret_id);
	wc_sink_free(sink);
	return r;
}

int we_load(struct wc_store *store, const char *id, struct we_loaded *ret)
{
	struct wc_snapshot *snap = NULL;
	struct we_loaded l = {};
	const void *data;
	const char *sig;
	size_t len;
	int r;

	r = wc_snapshot_open(store, id, &snap);
	if (r < 0)
		return r;
	if (wc_snapshot_blob(snap, BLOB_OUTPUT, &data, &len) == 0 && len) {
		l.output = malloc(len);
		if (!l.output) {
			wc_snapshot_close(snap);
			return -ENOMEM;
		}
		memcpy(l.output, data, len);
		l.output_len = len;
	}
	if (wc_snapshot_blob(snap, BLOB_TERMIOS, &data, &len) == 0) {
		if (len != sizeof(l.tio)) {
			free(l.output);
			wc_snapshot_close(snap);
			return err_set(EBADMSG, "snapshot %s: bad %s blob", id, BLOB_TERMIOS);
		}
		memcpy(&l.tio, data, len);
		l.has_tio = true;
	}
	sig = wc_snapshot_label(snap, LABEL_SIGNAL);
	if (sig)
		l.restore_signal = atoi(sig);
	wc_snapshot_close(snap);
	*ret = l;
	return 0;
}

void we_loaded_fini(struct we_loaded *l)
{
	free(l->output);
	*l = (struct we_loaded){};
}

int we_restore(struct wc_store *store, const char *id, int resume_signal, pid_t *ret_child,
	       pid_t *ret_pid)
{
	struct eng_restore_opts opts = {
		.sz = sizeof(opts),
		.new_pidns = true,
		.inherit_stdio = true,
		.inherit_session = true,
		.resume_signal = resume_signal,
	};
	struct eng_restored out;
	int r;

	r = eng_restore(store, id, &opts, &out);
	if (r < 0)
		return r == -EXDEV ? -ESTALE : r;
	*ret_child = out.child;
	*ret_pid = out.pid;
	return 0;
}
