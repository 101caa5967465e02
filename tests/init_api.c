/*
 * install and document against the reference keruta-api server: the
 * repository's install script (GET /repositories/{id}/script), its
 * output shipped as task logs, failures in the FAILED status; documents
 * (GET /documents/{id}/content) under hostile Content-Disposition names,
 * over the size cap, and binary.
 */
#include "init_harness.c"

#define INIT_PHASE "  init: [install, document]\n"

static char *b64(const unsigned char *d, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
		             (i + 2 < n ? d[i + 2] : 0);
		*o++ = t[v >> 18 & 63];
		*o++ = t[v >> 12 & 63];
		*o++ = i + 1 < n ? t[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? t[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

Test(install_api, script_runs_and_output_is_shipped)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"title\":\"x\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\",\"url\":\"https://example.invalid/r.git\"}],"
	               "\"installScripts\":{\"r1\":\"echo api-install-hello\\ntouch marker\\n\"}}");
	const char *args[] = {"--task-id", "t1", "--repository-id", "r1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kx_exists(x.work, "marker"), "%s", x.log);
	char *state = kx_api_state(&api);
	cr_assert(kt_contains(state, "api-install-hello"), "the output was not shipped: %s", state);
	free(state);
	kt_api_stop(&api);
	kx_free(&x);
}

/* The repository's install script empty (keruta-api answers 200 with no
 * body): the task's own install script runs instead. */
Test(install_api, empty_repository_script_falls_back_to_the_tasks)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"title\":\"x\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\",\"url\":\"https://example.invalid/r.git\"}],"
	               "\"scripts\":{\"t1\":{\"installScript\":\"touch from-task\\n\"}},"
	               "\"installScripts\":{\"r1\":\"\"}}");
	const char *args[] = {"--task-id", "t1", "--repository-id", "r1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kx_exists(x.work, "from-task"), "the task's script did not run:\n%s", x.log);
	kt_api_stop(&api);
	kx_free(&x);
}

/* The install script cannot be fetched (keruta-api keeps failing): init
 * fails with the server's answer and leaves no script behind. */
Test(install_api, fetch_failure_fails_init_and_leaves_no_script)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"title\":\"x\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\",\"url\":\"https://example.invalid/r.git\"}],"
	               "\"installScripts\":{\"r1\":\"touch marker\\n\"}}");
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"path_regex\":\"/repositories/r1/script$\"},"
	               "\"action\":\"status\",\"code\":400,\"times\":-1}");
	const char *args[] = {"--task-id", "t1", "--repository-id", "r1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_assert_neq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "install script of repository r1"), "%s", x.log);
	cr_assert(!kx_exists(x.work, "marker"));
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t1/install.sh"));
	kt_api_stop(&api);
	kx_free(&x);
}

Test(install_api, no_script_404_skips)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_api_control(&api, "/_control/seed", "{\"repositories\":[{\"id\":\"r1\"}]}");
	const char *env[] = {"KERUTA_REPOSITORY_ID=r1", NULL};
	kx_agent_api(&x, &api, "init", NULL, env);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "no install script"), "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/install.sh"));
	kt_api_stop(&api);
	kx_free(&x);
}

Test(install_api, failure_reaches_the_api)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\"}],"
	               "\"installScripts\":{\"r1\":\"echo cannot-install >&2; exit 5\"}}");
	const char *args[] = {"--task-id", "t1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	char *state = kx_api_state(&api);
	cr_assert(kt_contains(state, "FAILED"), "%s", state);
	cr_assert(kt_contains(state, "exit code 5"), "%s", state);
	cr_assert(kt_contains(state, "cannot-install"), "%s", state);
	free(state);
	kt_api_stop(&api);
	kx_free(&x);
}

Test(document_api, hostile_disposition_names_stay_inside)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_api_control(
	        &api, "/_control/seed",
	        "{\"documents\":{"
	        "\"d1\":{\"content\":\"c1\",\"disposition\":\"attachment; filename=\\\"../../x\\\"\"},"
	        "\"d2\":{\"content\":\"c2\",\"disposition\":"
	        "\"attachment; filename=\\\"/nonexistent-keruta-test/passwd\\\"\"},"
	        "\"d3\":{\"content\":\"c3\",\"disposition\":"
	        "\"attachment; filename*=UTF-8''..%2F..%2Fevil%00.sh\"},"
	        "\"d4\":{\"content\":\"c4\",\"disposition\":\"attachment; filename=\\\"..\\\"\"},"
	        "\"d5\":{\"content\":\"c5\",\"disposition\":"
	        "\"attachment; filename*=UTF-8''a%0Ab%0D.md\"},"
	        "\"d6\":{\"content\":\"c6\"},"
	        "\"d7\":{\"content\":\"c7\",\"name\":\"report.md\"}}}");
	const char *env[] = {"KERUTA_DOCUMENT_ID=d1,d2,d3,d4,d5,d6,d7", NULL};
	kx_agent_api(&x, &api, "init", NULL, env);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(kx_count_entries(x.work), 1, "the work dir holds more than .keruta");
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 7, "%s", x.log);
	DIR *d = opendir(docs);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		cr_assert_neq(e->d_name[0], '.', "hidden name %s", e->d_name);
		for (const char *p = e->d_name; *p; p++)
			cr_assert((unsigned char)*p >= 0x20, "control byte in %s", e->d_name);
	}
	closedir(d);
	char *t = kx_read(x.work, ".keruta/documents/report.md", NULL);
	cr_assert_str_eq(t ? t : "", "c7");
	free(t);
	t = kx_read(x.work, ".keruta/documents/d6", NULL); /* no name: the id */
	cr_assert_str_eq(t ? t : "", "c6");
	free(t);
	free(docs);
	kt_api_stop(&api);
	kx_free(&x);
}

Test(document_api, oversized_refused_binary_kept)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, "  init: [document]\n", "  document: {plugin: document, with: {max_size: 16KiB}}\n");
	size_t n = 12000;
	unsigned char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	char *enc = b64(data, n);
	char *seed = NULL;
	cr_assert(asprintf(&seed,
	                   "{\"documents\":{\"bin\":{\"name\":\"blob.bin\",\"content_b64\":\"%s\"},"
	                   "\"big\":{\"name\":\"big.txt\",\"content\":\"%0*d\"}}}",
	                   enc, 20000, 0) > 0);
	kx_api_control(&api, "/_control/seed", seed);
	const char *ok[] = {"--document-id", "bin", NULL};
	kx_agent_api(&x, &api, "init", ok, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	size_t len = 0;
	char *got = kx_read(x.work, ".keruta/documents/blob.bin", &len);
	cr_assert_eq(len, n);
	cr_assert(got && memcmp(got, data, n) == 0, "binary content differs");
	free(got);

	const char *big[] = {"--document-id", "big", NULL};
	kx_agent_api(&x, &api, "init", big, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/documents/big.txt"));
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 1, "a partial file was left");
	free(docs);
	free(seed);
	free(enc);
	free(data);
	kt_api_stop(&api);
	kx_free(&x);
}
