// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork check [--json]: probe every kernel/CPU feature the engine relies
 * on and print a table (or one JSON object). Exit 0 when every required
 * feature is present, 1 otherwise (one line names the missing ones), 2 on
 * bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "common/err.h"
#include "common/log.h"
#include "engine.h"
#include "cli.h"

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void print_json(FILE *out, const struct eng_features *f, const struct utsname *u,
		       bool ok)
{
	bool first = true;

	fprintf(out, "{\"kernel\":");
	json_string(out, u->release);
	fprintf(out, ",\"machine\":");
	json_string(out, u->machine);
	fprintf(out, ",\"ok\":%s,\"missing_required\":[", ok ? "true" : "false");
	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++) {
		const struct eng_feature_desc *d = eng_feature_desc(i);

		if (!d->required || f->state[i].supported)
			continue;
		fprintf(out, "%s", first ? "" : ",");
		json_string(out, d->name);
		first = false;
	}
	fprintf(out, "],\"features\":[");
	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++) {
		const struct eng_feature_desc *d = eng_feature_desc(i);
		const struct eng_feature_state *s = &f->state[i];
		const char *ename = s->err ? strerrorname_np(-s->err) : NULL;

		fprintf(out, "%s{\"name\":", i ? "," : "");
		json_string(out, d->name);
		fprintf(out, ",\"supported\":%s,\"required\":%s,\"purpose\":",
			s->supported ? "true" : "false", d->required ? "true" : "false");
		json_string(out, d->purpose);
		fprintf(out, ",\"detail\":");
		json_string(out, s->detail);
		fprintf(out, ",\"error\":");
		if (ename)
			json_string(out, ename);
		else if (s->err)
			fprintf(out, "\"%d\"", -s->err);
		else
			fprintf(out, "null");
		fprintf(out, "}");
	}
	fprintf(out, "],\"values\":{\"pid_max\":%" PRIu32 ",\"io_uring_disabled\":%d,"
		"\"io_uring_ops_supported\":[", f->pid_max, f->io_uring_disabled);
	first = true;
	for (unsigned op = 0; op < 256; op++) {
		if (!eng_io_uring_op_supported(f, op))
			continue;
		fprintf(out, "%s%u", first ? "" : ",", op);
		first = false;
	}
	fprintf(out, "],\"uffd_features\":%" PRIu64 ",\"uffd_ioctls\":%" PRIu64
		",\"mm_map_size\":%" PRIu32 ",\"rseq_sig\":%" PRIu64 ",\"xcr0\":%" PRIu64
		",\"xsave_size\":%" PRIu32 ",\"xsave_max_size\":%" PRIu32
		",\"xsave_ext\":%" PRIu32 ",\"xstate_regset_size\":%" PRIu32
		",\"vdso_block_size\":%" PRIu64 "}}\n",
		f->uffd_features, f->uffd_ioctls, f->mm_map_size, f->rseq_sig, f->xcr0,
		f->xsave_size, f->xsave_max_size, f->xsave_ext, f->xstate_regset_size,
		f->vdso_block_size);
}

static void print_table(FILE *out, const struct eng_features *f, const struct utsname *u)
{
	unsigned nr_req = 0, nr_req_ok = 0, nr_opt = 0, nr_opt_ok = 0;

	fprintf(out, "Kernel %s (%s)\n\n", u->release, u->machine);
	fprintf(out, "%-20s %-10s %-9s %-34s %s\n", "FEATURE", "STATUS", "NEED", "FOR", "DETAIL");
	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++) {
		const struct eng_feature_desc *d = eng_feature_desc(i);
		const struct eng_feature_state *s = &f->state[i];

		fprintf(out, "%-20s %-10s %-9s %-34s %s\n", d->name,
			s->supported ? "supported" : "MISSING", d->required ? "required" : "optional",
			d->purpose, s->detail);
		if (d->required) {
			nr_req++;
			nr_req_ok += s->supported;
		} else {
			nr_opt++;
			nr_opt_ok += s->supported;
		}
	}
	fprintf(out, "\n%u of %u required and %u of %u optional features present\n",
		nr_req_ok, nr_req, nr_opt_ok, nr_opt);
}

int cmd_check(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct eng_features f;
	bool json = ctx->json;
	struct utsname u = {};
	int c, r;

	while ((c = getopt_long(argc, argv, "+jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("Usage: warmfork check [--json]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		log_error("check: unexpected argument \"%s\"", argv[optind]);
		return 2;
	}
	uname(&u);
	err_clear();
	r = eng_probe_features(&f);
	if (json)
		print_json(stdout, &f, &u, r == 0);
	else
		print_table(stdout, &f, &u);
	fflush(stdout);
	if (r < 0) {
		log_error("check: %s", err_str(r));
		return 1;
	}
	return 0;
}
