/*
 * edge_api.c - against the reference keruta-api server: texts we build
 * from the task's own data (a repository URL with quotes, a backslash and
 * a tab) reach the server as valid JSON that parses back to the same
 * text, and a failed fetch of the install script leaves no script behind.
 */
#include <json-c/json.h>

#include "init_harness.c"

/* The messages of the statuses the server recorded for a task. */
static json_object *statuses_of(kt_api *api, const char *id)
{
	char *state = kx_api_state(api);
	json_object *o = json_tokener_parse(state);
	cr_assert(o, "state is not JSON: %s", state);
	free(state);
	json_object *all, *list;
	cr_assert(json_object_object_get_ex(o, "statuses", &all));
	cr_assert(json_object_object_get_ex(all, id, &list), "no status for task %s", id);
	json_object_get(list);
	json_object_put(o);
	return list;
}

Test(edge_api, a_url_with_quotes_backslashes_and_tabs_reaches_the_api_as_written)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, "  init: [clone]\n", "  clone: {plugin: clone}\n");
	/* the URL as JSON text: http://127.0.0.1:1/a"b\c<TAB>d.git */
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\","
	               "\"url\":\"http://127.0.0.1:1/a\\\"b\\\\c\\td.git\"}]}");
	const char *args[] = {"--task-id", "t1", "--repository-id", "r1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_assert_eq(x.r.status, 1, "the clone cannot succeed: %s", x.log);
	json_object *list = statuses_of(&api, "t1");
	const char *url = "http://127.0.0.1:1/a\"b\\c\td.git";
	int failed = 0;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i), *st, *msg;
		if (!json_object_object_get_ex(s, "status", &st) ||
		    strcmp(json_object_get_string(st), "FAILED") != 0)
			continue;
		failed = 1;
		cr_assert(json_object_object_get_ex(s, "message", &msg));
		cr_expect(kt_contains(json_object_get_string(msg), url),
		          "the URL is not in the status message as written: %s",
		          json_object_get_string(msg));
	}
	cr_expect(failed, "no FAILED status received: %s", json_object_to_json_string(list));
	json_object_put(list);
	kt_api_stop(&api);
	kx_free(&x);
}

Test(edge_api, a_failed_script_fetch_leaves_no_script_behind)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, "  init: [install]\n", NULL);
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"r1\"}],"
	               "\"repositories\":[{\"id\":\"r1\"}],"
	               "\"installScripts\":{\"r1\":\"touch marker\\n\"}}");
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"method\":\"GET\",\"path_regex\":\"/script$\"},"
	               "\"action\":\"status\",\"code\":500,\"times\":-1}");
	const char *args[] = {"--task-id", "t1", "--repository-id", "r1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_assert(x.r.status == 1 || x.r.status == 3, "a failed fetch fails init (exit %d): %s",
	          x.r.status, x.log);
	cr_expect(!kx_exists(x.work, ".keruta/install.sh"), "a script was left behind: %s", x.log);
	cr_expect(!kx_exists(x.work, "marker"), "the script ran");
	/* the server took every log line: no warning that some were lost */
	cr_expect(!kt_contains(x.log, "not delivered"), "%s", x.log);
	kt_api_stop(&api);
	kx_free(&x);
}
