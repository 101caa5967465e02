/*
 * init_harness.c - shared by the install, document, collect and cleanup
 * tests (#included, so each test program stays one file to build): the
 * shared fixture (tests/lib/fixture.h) set up for these stages, runs of
 * the real keruta-agent on it in local mode or against the reference
 * keruta-api, and file helpers.  Not every program uses every helper,
 * hence KX_HELPER.
 */
#define KX_HELPER __attribute__((unused)) static
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "krtest.h"

/* The shared fixture (tests/lib/fixture.h) with the events file and the
 * artifacts outside the work dir. */
typedef kf kx;

/* Every stage of this area, each under its plugin's name. */
#define KX_STAGES                                                                           \
	"stages:\n"                                                                             \
	"  install: {plugin: install}\n"                                                        \
	"  document: {plugin: document}\n"                                                      \
	"  collect: {plugin: collect}\n"                                                        \
	"  cleanup: {plugin: cleanup, when: always}\n"

KX_HELPER void kx_setup(kx *x)
{
	kf_init(x, "id: t-1\ntitle: test task\n");
	kf_files_outside(x);
}

KX_HELPER void kx_free(kx *x)
{
	kf_free(x);
}

/* dir/rel (rel may contain directories, which are created). */
KX_HELPER char *kx_mk(const char *base, const char *rel)
{
	char *p = kt_path(base, rel);
	for (char *s = p + strlen(base) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	return p;
}

KX_HELPER void kx_write(const char *base, const char *rel, const char *text)
{
	char *p = kx_mk(base, rel);
	kt_write_file(p, text);
	free(p);
}

KX_HELPER void kx_write_bytes(const char *base, const char *rel, const void *data, size_t len)
{
	char *p = kx_mk(base, rel);
	kt_write_bytes(p, data, len);
	free(p);
}

KX_HELPER int kx_exists(const char *base, const char *rel)
{
	char *p = kt_path(base, rel);
	struct stat st;
	int r = lstat(p, &st) == 0;
	free(p);
	return r;
}

KX_HELPER char *kx_read(const char *base, const char *rel, size_t *len)
{
	char *p = kt_path(base, rel);
	char *t = kt_read_file(p, len);
	free(p);
	return t;
}

/* Number of entries in dir (not counting . and ..), -1 if unreadable. */
KX_HELPER int kx_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Pipeline: phases YAML (e.g. "  init: [install]\n") + a stages block. */
KX_HELPER void kx_pipeline(kx *x, const char *phases, const char *stages)
{
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n%sstages:\n%s", phases,
	                   stages ? stages : KX_STAGES + strlen("stages:\n")) > 0);
	kt_write_file(x->pipeline, text);
	free(text);
}

/* Run `keruta-agent CMD` in local mode on x's files; args and env extra. */
KX_HELPER void kx_agent(kx *x, const char *cmd, const char *const *args, const char *const *env)
{
	kt_result_free(&x->r);
	cr_assert_eq(kf_run(x, &x->r, cmd, args, env, 60), 0, "could not run the agent");
	cr_assert(!x->r.timed_out, "the agent did not finish in 60s; stderr:\n%s", x->r.err);
}

/* ---- keruta-api mode, against the reference server (tests/refapi) ---- */

/* Start the reference server (python3). */
KX_HELPER void kx_api_start(kt_api *api)
{
	cr_assert_eq(kt_api_start(api, NULL), 0, "the reference keruta-api server did not start");
}

/* POST /_control/seed (or another control path) and expect 200. */
KX_HELPER void kx_api_control(kt_api *api, const char *path, const char *json)
{
	int status = 0;
	char *body = kt_api_call(api, "POST", path, json, &status);
	cr_assert_eq(status, 200, "%s: %d %s", path, status, body ? body : "(no answer)");
	free(body);
}

/* GET /_control/state as text. */
KX_HELPER char *kx_api_state(kt_api *api)
{
	int status = 0;
	char *body = kt_api_call(api, "GET", "/_control/state", NULL, &status);
	cr_assert_eq(status, 200);
	return body;
}

/* Run `keruta-agent CMD` against the server (no task file). */
KX_HELPER void kx_agent_api(kx *x, kt_api *api, const char *cmd, const char *const *args,
                            const char *const *env)
{
	x->api_url = api->url;
	kx_agent(x, cmd, args, env);
	x->api_url = NULL;
}
