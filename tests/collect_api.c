/*
 * collect and cleanup against the reference keruta-api server: the
 * cleanup Job of seed 002 end to end (flags and environment as in its
 * manifest), streamed multipart uploads named by relative path, upload
 * failures named, and a failed stage followed by cleanup ending FAILED.
 */
#include <sys/stat.h>

#include "init_harness.c"

static const char *const token_args[] = {"--token", "s3cr3t-api-token", NULL};

Test(collect_api, cleanup_job_of_seed_002)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	cr_assert_eq(kt_api_start(&api, token_args), 0);
	kx_pipeline(&x, "  cleanup: [collect, cleanup]\n", NULL);
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"123\",\"title\":\"t\"}]}");
	kx_write(x.work, ".keruta/tasks/123/doc/report.md", "# result\n");
	kx_write_bytes(x.work, ".keruta/tasks/123/doc/sub/data.bin", "\0\1\2\377", 4);
	kx_write(x.work, ".keruta/tasks/123/doc/empty", "");
	kx_write(x.work, ".keruta/tasks/123/execute.sh", "true");
	char *token = kt_path(x.dir, "sa-token");
	kt_write_file(token, "service-account-token-value");
	char *link = kt_path(x.work, ".keruta/tasks/123/doc/token");
	cr_assert_eq(symlink(token, link), 0);
	char *fifo = kt_path(x.work, ".keruta/tasks/123/doc/fifo");
	cr_assert_eq(mkfifo(fifo, 0600), 0);

	char *url_env = NULL;
	cr_assert(asprintf(&url_env, "KERUTA_API_URL=%s", api.url) > 0);
	const char *env[] = {"KERUTA_TASK_ID=123", url_env, "KERUTA_API_TOKEN=s3cr3t-api-token",
	                     "KERUTA_SOURCE_POD=keruta-job-task123-pod-xyz", NULL};
	const char *args[] = {"--task-id", "123", "--source-pod", "keruta-job-task123-pod-xyz",
	                      NULL};
	kx_agent_api(&x, &api, "cleanup", args, env);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "pod keruta-job-task123-pod-xyz"), "%s", x.log);
	char *state = kx_api_state(&api);
	cr_assert(kt_contains(state, "\"report.md\""), "%s", state);
	cr_assert(kt_contains(state, "\"sub/data.bin\""), "%s", state);
	cr_assert(kt_contains(state, "\"empty\""), "%s", state);
	cr_assert(!kt_contains(state, "\"token\""), "the symlink was uploaded: %s", state);
	cr_assert(!kt_contains(state, "\"fifo\""), "%s", state);
	cr_assert_eq(kt_count(state, "\"sha256\""), 3, "%s", state);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/123/execute.sh"));
	cr_assert(kx_exists(x.work, ".keruta/tasks/123/doc/report.md"));
	free(state);
	free(url_env);
	free(token);
	free(link);
	free(fifo);
	kt_api_stop(&api);
	kx_free(&x);
}

Test(collect_api, refused_uploads_fail_the_stage_naming_the_files)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, "  run: [collect]\n", NULL);
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"method\":\"POST\",\"path_regex\":\"/documents$\"},"
	               "\"action\":\"status\",\"code\":400,\"times\":-1,\"skip\":1}");
	kx_write(x.work, ".keruta/tasks/t1/doc/a.txt", "a");
	kx_write(x.work, ".keruta/tasks/t1/doc/b.txt", "b");
	kx_write(x.work, ".keruta/tasks/t1/doc/c.txt", "c");
	const char *args[] = {"--task-id", "t1", NULL};
	kx_agent_api(&x, &api, "run", args, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "could not collect 2 files: b.txt, c.txt"), "%s",
	          x.termtext);
	cr_assert(!kt_contains(x.termtext, "and more"), "every failed file is named: %s", x.termtext);
	char *state = kx_api_state(&api);
	cr_assert(kt_contains(state, "\"a.txt\""), "%s", state);
	cr_assert(kt_contains(state, "FAILED"), "%s", state);
	free(state);
	kt_api_stop(&api);
	kx_free(&x);
}

Test(collect_api, failed_stage_then_cleanup_reports_failed)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, "  execute: [install, document, collect, cleanup]\n", NULL);
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\"}],"
	               "\"installScripts\":{\"r1\":\"exit 4\"}}");
	const char *args[] = {"--task-id", "t1", NULL};
	kx_agent_api(&x, &api, "execute", args, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.log, "[cleanup] passed"), "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t1/install.sh"));
	char *state = kx_api_state(&api);
	char *in_progress = strstr(state, "IN_PROGRESS");
	char *failed = strstr(state, "\"FAILED\"");
	cr_assert(in_progress && failed && in_progress < failed, "%s", state);
	cr_assert(kt_contains(state, "stage install failed"), "%s", state);
	cr_assert(kt_contains(state, "exit code 4"), "%s", state);
	free(state);
	kt_api_stop(&api);
	kx_free(&x);
}
