/*
 * The seeds' Kubernetes flow, outside Kubernetes: the init container's
 * `keruta-agent init` (seed 004), the main container's `keruta-agent run`
 * and the cleanup Job's `keruta-agent cleanup` (seed 002), one after the
 * other on one work directory, with exactly the seeds' arguments and
 * environment variables - `$(NAME)` left unexpanded, as a runtime other
 * than Kubernetes passes it - against the reference keruta-api server and
 * a git daemon on loopback.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git_helpers.h"
#include "krtest.h"

#define TOKEN "seed-flow-token-8f2c1e"

typedef struct flow {
	char *dir, *work, *pipeline, *termlog;
	gt_server git;
	kt_api api;
} flow;

static void flow_start(flow *f)
{
	memset(f, 0, sizeof(*f));
	f->dir = kt_tmpdir();
	f->work = kt_path(f->dir, "work");
	f->pipeline = kt_path(kt_srcdir(), "conf/pipeline.yaml");
	f->termlog = kt_path(f->dir, "termination-log");
	gt_make_repo(f->dir, 0);
	const char *gargs[] = {"--root", NULL, NULL};
	char *srv = kt_path(f->dir, "srv");
	gargs[1] = srv;
	gt_server_start(&f->git, "daemon", gargs);
	const char *aargs[] = {"--token", TOKEN, NULL};
	cr_assert_eq(kt_api_start(&f->api, aargs), 0, "the reference API server did not start");

	char *seed = NULL;
	cr_assert(asprintf(&seed,
	                   "{\"tasks\": [{\"id\": \"123\", \"name\": \"seed flow\", \"description\": "
	                   "\"runs the seeds\", \"priority\": 2, \"status\": \"PENDING\", "
	                   "\"createdAt\": \"2026-01-01T00:00:00Z\", \"updatedAt\": "
	                   "\"2026-01-02T00:00:00Z\"}],"
	                   " \"scripts\": {\"123\": {\"language\": \"sh\", \"content\": \"#!/bin/sh\\nset -e\\n"
	                   "mkdir -p .keruta/doc\\necho \\\"$KERUTA_TASK_TITLE/$KERUTA_TASK_PRIORITY\\\" > "
	                   ".keruta/doc/result.txt\\ncat .keruta/documents/spec.md >> .keruta/doc/result.txt\\n"
	                   "echo execute-output-line\\n\"}},"
	                   " \"repositories\": [{\"id\": \"r1\", \"name\": \"repo\", \"url\": "
	                   "\"git://127.0.0.1:%d/repo.git\", \"branch\": \"main\"}],"
	                   " \"installScripts\": {\"r1\": \"#!/bin/sh\\necho installed > .keruta/installed\\n"
	                   "echo install-output-line\\n\"},"
	                   " \"documents\": {\"d1\": {\"name\": \"spec.md\", \"content\": \"# the spec\\n\"}}}",
	                   f->git.port) > 0);
	int st = 0;
	char *body = kt_api_call(&f->api, "POST", "/_control/seed", seed, &st);
	cr_assert_eq(st, 200, "seed: %d %s", st, body ? body : "");
	free(body);
	free(seed);
	free(srv);
}

static void flow_stop(flow *f)
{
	kt_api_stop(&f->api);
	gt_server_stop(&f->git);
	kt_rmrf(f->dir);
	free(f->dir);
	free(f->work);
	free(f->pipeline);
	free(f->termlog);
	gt_free_all();
}

/* Run the agent with the seed's argv and environment. */
static void agent(flow *f, kt_result *r, const char *const *args, const char *const *env_in)
{
	const char *argv[32] = {kt_agent()};
	int n = 1;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n++] = "--termination-log";
	argv[n++] = f->termlog;
	argv[n] = NULL;
	char *url = NULL, *pipe = NULL;
	cr_assert(asprintf(&url, "%s", f->api.url) > 0);
	cr_assert(asprintf(&pipe, "KERUTA_PIPELINE=%s", f->pipeline) > 0);
	char *ep = NULL, *au = NULL;
	cr_assert(asprintf(&ep, "KERUTA_API_ENDPOINT=%s", url) > 0);
	cr_assert(asprintf(&au, "KERUTA_API_URL=%s", url) > 0);
	const char *env[32] = {pipe, ep, au, "KERUTA_API_TOKEN=" TOKEN, "KERUTA_LOG_FORMAT=text",
	                       "KERUTA_TASK_FILE", "KERUTA_BACKEND", "KERUTA_WORK_DIR"};
	int m = 8;
	for (int i = 0; env_in && env_in[i]; i++)
		env[m++] = env_in[i];
	env[m] = NULL;
	cr_assert_eq(kt_run(r, argv, env, f->dir, NULL, 120), 0);
	cr_assert(!r->timed_out, "the agent hung: %s", r->err);
	free(url);
	free(pipe);
	free(ep);
	free(au);
}

static char *file(const char *dir, const char *name)
{
	char *p = kt_path(dir, name);
	char *t = kt_read_file(p, NULL);
	free(p);
	return t;
}

Test(seeds, init_run_cleanup_with_the_seeds_arguments, .timeout = 300)
{
	flow f;
	flow_start(&f);
	kt_result r;

	/* seed 004: the init container */
	const char *init_args[] = {"init", "--repository-id", "$(KERUTA_REPOSITORY_ID)",
	                           "--document-id", "$(KERUTA_DOCUMENT_ID)", "--api-url",
	                           "$(KERUTA_API_ENDPOINT)", "--work-dir", "work", NULL};
	const char *init_env[] = {"KERUTA_REPOSITORY_ID=r1", "KERUTA_DOCUMENT_ID=d1", NULL};
	agent(&f, &r, init_args, init_env);
	cr_assert_eq(r.status, 0, "init failed:\n%s", r.err);
	char *readme = file(f.work, "README");
	cr_expect_not_null(readme, "the repository was not cloned into the work dir");
	char *exclude = file(f.work, ".git/info/exclude");
	cr_expect(kt_contains(exclude, "/.keruta\n"), "%s", exclude ? exclude : "(none)");
	char *installed = file(f.work, ".keruta/installed");
	cr_expect_str_eq(installed ? installed : "", "installed\n");
	char *spec = file(f.work, ".keruta/documents/spec.md");
	cr_expect_str_eq(spec ? spec : "", "# the spec\n");
	cr_expect(kt_contains(r.out, "install-output-line"), "install output passes through: %s", r.out);
	cr_expect(!kt_contains(r.err, TOKEN) && !kt_contains(r.out, TOKEN), "the token leaked");
	free(readme);
	free(exclude);
	free(installed);
	free(spec);
	kt_result_free(&r);

	/* the main container */
	const char *run_args[] = {"run", "--task-id", "$(KERUTA_TASK_ID)", "--api-url",
	                          "$(KERUTA_API_ENDPOINT)", "--work-dir", "work", NULL};
	const char *run_env[] = {"KERUTA_TASK_ID=123", NULL};
	agent(&f, &r, run_args, run_env);
	cr_assert_eq(r.status, 0, "run failed:\n%s", r.err);
	cr_expect(kt_contains(r.out, "execute-output-line"), "%s", r.out);
	kt_result_free(&r);
	char *tl = kt_read_file(f.termlog, NULL);
	cr_expect(kt_contains(tl, "\"status\":\"COMPLETED\""), "%s", tl ? tl : "(none)");
	free(tl);

	/* seed 002: the cleanup Job */
	const char *cleanup_args[] = {"cleanup", "--task-id", "$(KERUTA_TASK_ID)", "--api-url",
	                              "$(KERUTA_API_URL)", "--source-pod", "$(KERUTA_SOURCE_POD)",
	                              "--work-dir", "work", NULL};
	const char *cleanup_env[] = {"KERUTA_TASK_ID=123",
	                             "KERUTA_SOURCE_POD=keruta-job-task123-pod-xyz", NULL};
	agent(&f, &r, cleanup_args, cleanup_env);
	cr_assert_eq(r.status, 0, "cleanup failed:\n%s", r.err);
	cr_expect(kt_contains(r.err, "keruta-job-task123-pod-xyz"), "%s", r.err);
	kt_result_free(&r);

	int st = 0;
	char *state = kt_api_call(&f.api, "GET", "/_control/state", NULL, &st);
	cr_assert_eq(st, 200);
	/* statuses in order: run IN_PROGRESS, run COMPLETED, cleanup COMPLETED */
	char *p1 = strstr(state, "\"IN_PROGRESS\"");
	char *p2 = p1 ? strstr(p1, "\"COMPLETED\"") : NULL;
	char *p3 = p2 ? strstr(p2 + 1, "\"COMPLETED\"") : NULL;
	cr_expect(p1 && p2 && p3, "statuses: %s", state);
	cr_expect(!kt_contains(state, "\"FAILED\""), "%s", state);
	/* the artifact, uploaded by run and not again by the cleanup Job */
	cr_expect_eq(kt_count(state, "\"name\": \"result.txt\"") + kt_count(state, "\"name\":\"result.txt\""), 1,
	             "%s", state);
	cr_expect(kt_contains(state, "execute-output-line"), "logs reach the API: %s", state);
	free(state);

	char *requests = kt_api_call(&f.api, "GET", "/_control/requests", NULL, &st);
	cr_expect(!kt_contains(requests, "\"invalid\""), "a request broke the API's schema: %s",
	          requests);
	cr_expect(kt_contains(requests, "/api/v1/repositories/r1"), "init asked for the repository");
	free(requests);

	/* .keruta stays out of git's view */
	char *status = gt_sh(f.work, "git status --porcelain");
	cr_expect(!kt_contains(status, ".keruta"), "git sees the agent's files: %s", status);
	free(status);
	flow_stop(&f);
}

/* ---- one task, one outcome (doc/lifecycle.md) ---- */

/* text as a JSON string body (no quotes around it); caller frees */
static char *json_text(const char *text)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	for (const char *p = text; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fclose(f);
	return out;
}

/* Task 123's script, in keruta-api's shape. */
static void seed_script(flow *f, const char *script)
{
	char *body = json_text(script), *seed = NULL;
	cr_assert(asprintf(&seed, "{\"scripts\": {\"123\": {\"content\": \"%s\", \"language\": \"sh\", "
	                          "\"filename\": \"task.sh\"}}}",
	                   body) > 0);
	int st = 0;
	char *answer = kt_api_call(&f->api, "POST", "/_control/seed", seed, &st);
	cr_assert_eq(st, 200, "seed: %s", answer ? answer : "");
	free(answer);
	free(seed);
	free(body);
}

/* The statuses keruta-api received for task id, "S[:progress]" joined
 * by spaces. */
static char *statuses_of(flow *f, const char *id)
{
	int st = 0;
	char *state = kt_api_call(&f->api, "GET", "/_control/state", NULL, &st);
	cr_assert_eq(st, 200);
	char *script = NULL;
	cr_assert(asprintf(&script,
	                   "import json,sys\nd=json.loads(sys.argv[1])\n"
	                   "print(' '.join(s['status']+(':'+s['progress'] if 'progress' in s else '')"
	                   " for s in d['statuses'].get(sys.argv[2],[])))") > 0);
	const char *argv[] = {"python3", "-c", script, state, id, NULL};
	kt_result r;
	cr_assert(kt_run(&r, argv, NULL, NULL, NULL, 30) == 0 && r.status == 0, "%s", r.err);
	char *out = strdup(r.out);
	out[strcspn(out, "\n")] = '\0';
	kt_result_free(&r);
	free(script);
	free(state);
	return out;
}

static char *statuses_of_123(flow *f)
{
	return statuses_of(f, "123");
}

static const char *const init_args[] = {"init", "--repository-id", "$(KERUTA_REPOSITORY_ID)",
                                        "--document-id", "$(KERUTA_DOCUMENT_ID)", "--api-url",
                                        "$(KERUTA_API_ENDPOINT)", "--work-dir", "work", NULL};
/* the main container as render writes it when a cleanup Job follows */
static const char *const run_args[] = {"run", "--task-id", "$(KERUTA_TASK_ID)", "--api-url",
                                       "$(KERUTA_API_ENDPOINT)", "--work-dir", "work",
                                       "--final-status", "no", NULL};
static const char *const cleanup_args[] = {"cleanup", "--task-id", "$(KERUTA_TASK_ID)",
                                           "--api-url", "$(KERUTA_API_URL)", "--source-pod",
                                           "$(KERUTA_SOURCE_POD)", "--work-dir", "work", NULL};

Test(seeds, one_final_status_sent_once_and_no_token_in_task_code, .timeout = 300)
{
	if (geteuid() != 0)
		cr_skip_test("run_as needs the tests to run as root");
	flow f;
	flow_start(&f);
	kt_result r;
	/* the run_as user must reach the work dir; the token's dir stays closed */
	cr_assert(chmod(f.dir, 0755) == 0);
	char *secret = kt_path(f.dir, "secret");
	cr_assert(mkdir(secret, 0700) == 0);
	char *token_file = kt_path(secret, "token");
	kt_write_file(token_file, TOKEN "\n");
	char *script = NULL;
	cr_assert(asprintf(&script,
	                   "#!/bin/sh\n"
	                   "mkdir -p .keruta/doc\n"
	                   "{ env; cat '%s'; tr '\\000' '\\n' < /proc/$PPID/environ;"
	                   "  echo \"token=$KERUTA_API_TOKEN\"; } > .keruta/doc/hunt.txt 2>&1\n"
	                   "echo \"reversed: $(echo $KERUTA_API_TOKEN | rev)\"\n"
	                   "K='%s'\n"
	                   "$K log INFO 'a line from the script'\n"
	                   "$K progress 40 building\n"
	                   "echo 'the report' > /tmp/seed-report-$$.txt\n"
	                   "$K artifact /tmp/seed-report-$$.txt; rm -f /tmp/seed-report-$$.txt\n"
	                   "echo execute-output-line\n",
	                   token_file, kt_agent()) > 0);
	seed_script(&f, script);
	char *tf = NULL;
	cr_assert(asprintf(&tf, "KERUTA_API_TOKEN_FILE=%s", token_file) > 0);

	const char *init_env[] = {"KERUTA_REPOSITORY_ID=r1", "KERUTA_DOCUMENT_ID=d1",
	                          "KERUTA_RUN_AS=65534", tf, NULL};
	agent(&f, &r, init_args, init_env);
	cr_assert_eq(r.status, 0, "init failed:\n%s", r.err);
	kt_result_free(&r);

	const char *run_env[] = {"KERUTA_TASK_ID=123", "KERUTA_RUN_AS=65534", tf, NULL};
	agent(&f, &r, run_args, run_env);
	cr_assert_eq(r.status, 0, "run failed:\n%s", r.err);
	cr_expect(kt_contains(r.out, "execute-output-line"), "%s", r.out);
	cr_expect(!kt_contains(r.out, TOKEN) && !kt_contains(r.err, TOKEN), "the token leaked");
	kt_result_free(&r);
	char *tl = kt_read_file(f.termlog, NULL);
	cr_expect(kt_contains(tl, "{\"taskId\":\"123\",\"reported\":null,\"status\":\"COMPLETED\""),
	          "run reports nothing final: %s", tl ? tl : "(none)");
	free(tl);
	char *s1 = statuses_of_123(&f);
	cr_expect_str_eq(s1, "IN_PROGRESS IN_PROGRESS:40", "before the cleanup Job");
	free(s1);

	const char *cleanup_env[] = {"KERUTA_TASK_ID=123",
	                             "KERUTA_SOURCE_POD=keruta-job-task123-pod-xyz", tf, NULL};
	agent(&f, &r, cleanup_args, cleanup_env);
	cr_assert_eq(r.status, 0, "cleanup failed:\n%s", r.err);
	kt_result_free(&r);
	tl = kt_read_file(f.termlog, NULL);
	cr_expect(kt_contains(tl, "\"reported\":\"COMPLETED\""), "%s", tl ? tl : "(none)");
	free(tl);

	/* the cleanup Job retried, its upload failing this time */
	int st = 0;
	char *ans = kt_api_call(&f.api, "POST", "/_control/fault",
	                        "{\"match\": {\"method\": \"POST\", \"path_regex\": \"/documents$\"}, "
	                        "\"action\": \"status\", \"code\": 400, \"times\": 1}",
	                        &st);
	cr_assert_eq(st, 200, "%s", ans ? ans : "");
	free(ans);
	char *late = kt_path(f.work, ".keruta/doc/late.txt");
	kt_write_file(late, "late\n");
	free(late);
	agent(&f, &r, cleanup_args, cleanup_env);
	cr_expect_neq(r.status, 0, "the upload failed: %s", r.err);
	cr_expect(kt_contains(r.err, "final status stays COMPLETED"), "%s", r.err);
	kt_result_free(&r);
	tl = kt_read_file(f.termlog, NULL);
	cr_expect(kt_contains(tl, "\"reported\":\"COMPLETED\",\"status\":\"FAILED\""), "%s",
	          tl ? tl : "(none)");
	cr_expect(kt_contains(tl, "\"note\":\"after COMPLETED was reported"), "%s", tl ? tl : "");
	free(tl);

	/* a child task on the parent's volume: its own outcome, its own
	 * artifacts only, the parent's record untouched */
	char *child_seed = NULL;
	cr_assert(asprintf(&child_seed,
	                   "{\"tasks\": [{\"id\": \"124\", \"name\": \"child\", \"status\": "
	                   "\"PENDING\", \"parentTaskId\": \"123\"}], \"scripts\": {\"124\": "
	                   "{\"content\": \"#!/bin/sh\\nmkdir -p .keruta/doc\\necho child > "
	                   ".keruta/doc/child.txt\\n\", \"language\": \"sh\"}}}") > 0);
	free(kt_api_call(&f.api, "POST", "/_control/seed", child_seed, &st));
	cr_assert_eq(st, 200);
	free(child_seed);
	const char *child_run_env[] = {"KERUTA_TASK_ID=124", tf, NULL};
	agent(&f, &r, run_args, child_run_env);
	cr_expect_eq(r.status, 0, "child run: %s", r.err);
	kt_result_free(&r);
	const char *child_cleanup_env[] = {"KERUTA_TASK_ID=124",
	                                   "KERUTA_SOURCE_POD=keruta-job-task124-pod-abc", tf, NULL};
	agent(&f, &r, cleanup_args, child_cleanup_env);
	cr_expect_eq(r.status, 0, "child cleanup: %s", r.err);
	kt_result_free(&r);
	char *cstate = kt_api_call(&f.api, "GET", "/_control/state", NULL, &st);
	cr_expect(kt_count(cstate, "\"name\": \"child.txt\"") == 1, "%s", cstate);
	cr_expect_eq(kt_count(cstate, "\"name\": \"hunt.txt\""), 1,
	             "the parent's artifact is never the child's: %s", cstate);
	free(cstate);

	/* exactly one final status, never changed */
	char *s2 = statuses_of_123(&f);
	cr_expect_str_eq(s2, "IN_PROGRESS IN_PROGRESS:40 COMPLETED:100");
	free(s2);

	/* the script found no token, and nothing keruta-api got holds it */
	char *hunt = file(f.work, ".keruta/tasks/123/doc/hunt.txt");
	cr_assert(hunt, "the script left no hunt.txt");
	cr_expect(!kt_contains(hunt, TOKEN), "the script found the token:\n%s", hunt);
	cr_expect(kt_contains(hunt, "token=\n"), "%s", hunt);
	char *state = kt_api_call(&f.api, "GET", "/_control/state", NULL, &st);
	cr_expect(!kt_contains(state, TOKEN), "keruta-api received the token: %s", state);
	cr_expect(!kt_contains(state, "e1c2f8-nekot-wolf-dees"), "the token reversed: %s", state);
	/* what the script sent through the agent arrived */
	cr_expect(kt_contains(state, "[INFO] a line from the script"), "%s", state);
	cr_expect(kt_contains(state, "\"message\": \"building\""), "%s", state);
	/* each artifact exactly once: run's collect, the cleanup Job and its
	 * retry all saw it */
	cr_expect_eq(kt_count(state, "\"name\": \"hunt.txt\""), 1, "%s", state);
	cr_expect_eq(kt_count(state, "\"name\": \"seed-report-"), 1, "%s", state);
	free(state);
	free(hunt);
	free(tf);
	free(script);
	free(token_file);
	free(secret);
	flow_stop(&f);
}

Test(seeds, a_failing_main_container_is_reported_once_by_the_cleanup_job, .timeout = 300)
{
	flow f;
	flow_start(&f);
	kt_result r;
	seed_script(&f, "#!/bin/sh\necho about to fail\nexit 3\n");
	const char *init_env[] = {"KERUTA_REPOSITORY_ID=r1", "KERUTA_DOCUMENT_ID=d1", NULL};
	agent(&f, &r, init_args, init_env);
	cr_assert_eq(r.status, 0, "init failed:\n%s", r.err);
	kt_result_free(&r);
	const char *run_env[] = {"KERUTA_TASK_ID=123", NULL};
	agent(&f, &r, run_args, run_env);
	cr_expect_eq(r.status, 1, "%s", r.err);
	kt_result_free(&r);
	char *s1 = statuses_of_123(&f);
	cr_expect_str_eq(s1, "IN_PROGRESS", "run sends no FAILED itself");
	free(s1);
	const char *cleanup_env[] = {"KERUTA_TASK_ID=123",
	                             "KERUTA_SOURCE_POD=keruta-job-task123-pod-xyz", NULL};
	agent(&f, &r, cleanup_args, cleanup_env);
	kt_result_free(&r);
	agent(&f, &r, cleanup_args, cleanup_env); /* retried */
	kt_result_free(&r);
	char *s2 = statuses_of_123(&f);
	cr_expect_str_eq(s2, "IN_PROGRESS FAILED");
	free(s2);
	int st = 0;
	char *state = kt_api_call(&f.api, "GET", "/_control/state", NULL, &st);
	cr_expect(kt_contains(state, "\"message\": \"stage execute failed: the command failed with "
	                             "exit code 3\""),
	          "%s", state);
	cr_expect(kt_contains(state, "\"errorCode\": \"EXECUTION_ERROR\""), "%s", state);
	free(state);
	flow_stop(&f);
}

Test(seeds, a_cleanup_job_without_the_main_containers_outcome_sends_nothing, .timeout = 300)
{
	flow f;
	flow_start(&f);
	kt_result r;
	const char *init_env[] = {"KERUTA_REPOSITORY_ID=r1", "KERUTA_DOCUMENT_ID=d1", NULL};
	agent(&f, &r, init_args, init_env);
	cr_assert_eq(r.status, 0, "init failed:\n%s", r.err);
	kt_result_free(&r);
	/* the main container died (OOM, a deleted pod) before it finished */
	const char *cleanup_env[] = {"KERUTA_TASK_ID=123",
	                             "KERUTA_SOURCE_POD=keruta-job-task123-pod-xyz", NULL};
	agent(&f, &r, cleanup_args, cleanup_env);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "left no outcome"), "%s", r.err);
	kt_result_free(&r);
	char *s1 = statuses_of_123(&f);
	cr_expect_str_eq(s1, "", "the launcher reports how the pod ended");
	free(s1);
	char *tl = kt_read_file(f.termlog, NULL);
	cr_expect(kt_contains(tl, "\"reported\":null"), "%s", tl ? tl : "(none)");
	free(tl);
	flow_stop(&f);
}

/* The work volume is shared with task code: a link planted where the
 * agent keeps the task's outcome record is removed, never written
 * through, and a forged record behind it is never read. */
Test(seeds, a_link_in_place_of_the_outcome_record_is_not_followed, .timeout = 300)
{
	flow f;
	flow_start(&f);
	kt_result r;
	const char *init_env[] = {"KERUTA_REPOSITORY_ID=r1", "KERUTA_DOCUMENT_ID=d1", NULL};
	agent(&f, &r, init_args, init_env);
	cr_assert_eq(r.status, 0, "init failed:\n%s", r.err);
	kt_result_free(&r);
	/* a forged "already COMPLETED" record outside the work dir, and a link
	 * to it where the record lives */
	char *outside = kt_path(f.dir, "outside");
	cr_assert(mkdir(outside, 0755) == 0);
	char *forged = kt_path(outside, "outcome.json");
	static const char forged_text[] = "{\"taskId\":\"123\",\"command\":\"run\",\"status\":"
	                                   "\"COMPLETED\",\"reported\":\"COMPLETED\"}\n";
	kt_write_file(forged, forged_text);
	/* init knew no task id: its area becomes task 123's when run starts */
	char *planted = kt_path(f.work, ".keruta/tasks/.no-task-id/outcome.json");
	cr_assert(symlink(forged, planted) == 0, "%s", strerror(errno));
	free(planted);
	char *link = kt_path(f.work, ".keruta/tasks/123/outcome.json");
	const char *run_env[] = {"KERUTA_TASK_ID=123", NULL};
	agent(&f, &r, run_args, run_env);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	struct stat st;
	cr_expect(lstat(link, &st) == 0 && S_ISREG(st.st_mode), "the link was not replaced");
	char *still = kt_read_file(forged, NULL);
	cr_expect_str_eq(still ? still : "(gone)", forged_text, "written through the link");
	free(still);
	const char *cleanup_env[] = {"KERUTA_TASK_ID=123",
	                             "KERUTA_SOURCE_POD=keruta-job-task123-pod-xyz", NULL};
	agent(&f, &r, cleanup_args, cleanup_env);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	char *s = statuses_of_123(&f);
	cr_expect(kt_contains(s, "COMPLETED"), "the forged record stopped the final status: %s", s);
	free(s);
	free(outside);
	free(forged);
	free(link);
	flow_stop(&f);
}

/* Two tasks on one volume whose ids differ only in a character a file
 * name rule might fold ("a.1", "a_1"): each keeps its own record, so the
 * first one's final status never stands for the second's. */
Test(seeds, tasks_with_similar_ids_keep_their_own_records, .timeout = 300)
{
	flow f;
	flow_start(&f);
	kt_result r;
	int st = 0;
	char *ans = kt_api_call(&f.api, "POST", "/_control/seed",
	                        "{\"tasks\": [{\"id\": \"a_1\", \"name\": \"one\", \"status\": "
	                        "\"PENDING\"}, {\"id\": \"a.1\", \"name\": \"two\", \"status\": "
	                        "\"PENDING\"}], \"scripts\": {\"a_1\": {\"language\": \"sh\", "
	                        "\"content\": \"#!/bin/sh\\necho one\\n\"}, \"a.1\": {\"language\": "
	                        "\"sh\", \"content\": \"#!/bin/sh\\necho two\\n\"}}}",
	                        &st);
	cr_assert_eq(st, 200, "seed: %s", ans ? ans : "");
	free(ans);
	const char *init_env[] = {"KERUTA_REPOSITORY_ID=r1", "KERUTA_DOCUMENT_ID=d1", NULL};
	agent(&f, &r, init_args, init_env);
	cr_assert_eq(r.status, 0, "init failed:\n%s", r.err);
	kt_result_free(&r);
	static const char *const ids[] = {"a_1", "a.1"};
	for (int i = 0; i < 2; i++) {
		char *idv = NULL, *pod = NULL;
		cr_assert(asprintf(&idv, "KERUTA_TASK_ID=%s", ids[i]) > 0);
		cr_assert(asprintf(&pod, "KERUTA_SOURCE_POD=keruta-job-%d-pod", i) > 0);
		const char *run_env[] = {idv, NULL}, *cleanup_env[] = {idv, pod, NULL};
		agent(&f, &r, run_args, run_env);
		cr_expect_eq(r.status, 0, "run %s: %s", ids[i], r.err);
		kt_result_free(&r);
		agent(&f, &r, cleanup_args, cleanup_env);
		cr_expect_eq(r.status, 0, "cleanup %s: %s", ids[i], r.err);
		kt_result_free(&r);
		char *s = statuses_of(&f, ids[i]);
		cr_expect(kt_contains(s, "COMPLETED"), "task %s got no final status: '%s'", ids[i], s);
		free(s);
		free(idv);
		free(pod);
	}
	flow_stop(&f);
}
