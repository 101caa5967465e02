/*
 * Settings: flags win over the environment, which wins over the pipeline
 * file, which wins over the defaults; Kubernetes' $(NAME) falls back to
 * the environment; unknown flags are refused with a suggestion.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"

static kr_node *settings_node(const char *text, kr_node **root)
{
	kr_error err = {0};
	cr_assert_eq(kr_node_load_string("p.yaml", text, strlen(text), root, &err), 0, "%s", err.msg);
	return (kr_node *)kr_node_get(*root, "settings");
}

static void clear_env(void)
{
	unsetenv("KERUTA_WORK_DIR");
	unsetenv("KERUTA_LOG_LEVEL");
	unsetenv("KERUTA_API_URL");
	unsetenv("KERUTA_API_ENDPOINT");
	unsetenv("KERUTA_TASK_ID");
	unsetenv("KERUTA_DOCUMENT_ID");
	unsetenv("KERUTA_GRACE_PERIOD");
}

Test(settings, precedence_flag_env_pipeline_default)
{
	clear_env();
	kr_node *root;
	const kr_node *ps = settings_node(
	        "settings: {work_dir: /from-pipeline, log_level: warn, api_url: http://pipe, "
	        "grace_period: 3s}\n",
	        &root);
	setenv("KERUTA_WORK_DIR", "/from-env", 1);
	setenv("KERUTA_LOG_LEVEL", "debug", 1);
	kr_settings *s = kr_settings_new();
	char *argv[] = {"keruta-agent", "execute", "--work-dir", "/from-flag", NULL};
	char **rest;
	int n_rest;
	kr_error err = {0};
	cr_assert_eq(kr_settings_parse_args(s, KR_CMD_EXECUTE, 4, argv, 2, &rest, &n_rest, &err), 0,
	             "%s", err.msg);
	cr_assert_eq(kr_settings_apply_env(s, &err), 0, "%s", err.msg);
	cr_assert_eq(kr_settings_apply_pipeline(s, "p.yaml", ps, &err), 0, "%s", err.msg);
	cr_assert_eq(kr_settings_finish(s, &err), 0);
	cr_expect_str_eq(kr_settings_get(s, KR_S_WORK_DIR), "/from-flag");
	cr_expect_str_eq(kr_settings_source(s, KR_S_WORK_DIR), "flag");
	cr_expect_str_eq(kr_settings_get(s, KR_S_LOG_LEVEL), "debug");
	cr_expect_str_eq(kr_settings_source(s, KR_S_LOG_LEVEL), "env KERUTA_LOG_LEVEL");
	cr_expect_str_eq(kr_settings_get(s, KR_S_API_URL), "http://pipe");
	cr_expect_str_eq(kr_settings_source(s, KR_S_API_URL), "pipeline");
	cr_expect_eq(kr_settings_u64(s, KR_S_GRACE_PERIOD), 3000u);
	cr_expect_null(kr_settings_get(s, KR_S_TERMINATION_LOG), "no termination log outside a pod");
	free(rest);
	kr_settings_free(s);
	kr_node_free(root);
	clear_env();
}

/* In a pod (Kubernetes sets KUBERNETES_SERVICE_HOST) the work dir is the
 * volume at /work and the outcome goes to /dev/termination-log; elsewhere
 * the work dir is ./keruta-work and no termination log is written. */
Test(settings, work_dir_and_termination_log_defaults_depend_on_the_place)
{
	clear_env();
	unsetenv("KUBERNETES_SERVICE_HOST");
	kr_settings *s = kr_settings_new();
	kr_error err = {0};
	cr_assert_eq(kr_settings_finish(s, &err), 0);
	cr_expect_str_eq(kr_settings_get(s, KR_S_WORK_DIR), "keruta-work");
	cr_expect_null(kr_settings_get(s, KR_S_TERMINATION_LOG));
	kr_settings_free(s);

	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	s = kr_settings_new();
	cr_assert_eq(kr_settings_finish(s, &err), 0);
	cr_expect_str_eq(kr_settings_get(s, KR_S_WORK_DIR), "/work");
	cr_expect_str_eq(kr_settings_get(s, KR_S_TERMINATION_LOG), "/dev/termination-log");
	kr_settings_free(s);
	unsetenv("KUBERNETES_SERVICE_HOST");
}

Test(settings, api_endpoint_env_is_an_alias_and_url_env_wins)
{
	clear_env();
	setenv("KERUTA_API_ENDPOINT", "http://endpoint", 1);
	kr_settings *s = kr_settings_new();
	kr_error err = {0};
	cr_assert_eq(kr_settings_apply_env(s, &err), 0);
	cr_expect_str_eq(kr_settings_get(s, KR_S_API_URL), "http://endpoint");
	kr_settings_free(s);
	setenv("KERUTA_API_URL", "http://url", 1);
	s = kr_settings_new();
	cr_assert_eq(kr_settings_apply_env(s, &err), 0);
	cr_expect_str_eq(kr_settings_get(s, KR_S_API_URL), "http://url");
	kr_settings_free(s);
	clear_env();
}

Test(settings, kubernetes_dollar_paren_falls_back_to_env)
{
	clear_env();
	setenv("KERUTA_TASK_ID", "123", 1);
	setenv("MY_URL", "http://api:8080", 1);
	kr_settings *s = kr_settings_new();
	char *argv[] = {"k", "execute", "--task-id", "$(KERUTA_TASK_ID)", "--api-url=$(MY_URL)",
	                "--repository-id", "$(UNSET_VAR_XYZ)", NULL};
	char **rest;
	int n_rest;
	kr_error err = {0};
	cr_assert_eq(kr_settings_parse_args(s, KR_CMD_EXECUTE, 7, argv, 2, &rest, &n_rest, &err), 0,
	             "%s", err.msg);
	cr_expect_str_eq(kr_settings_get(s, KR_S_TASK_ID), "123");
	cr_expect_str_eq(kr_settings_get(s, KR_S_API_URL), "http://api:8080");
	cr_expect_null(kr_settings_get(s, KR_S_REPOSITORY_ID), "an unset $(NAME) is as if not given");
	free(rest);
	kr_settings_free(s);
	clear_env();
}

/* The init container's command as rendered (seed 004). */
Test(settings, document_id_from_the_rendered_env_reference)
{
	clear_env();
	char *argv[] = {"k", "init", "--document-id", "$(KERUTA_DOCUMENT_ID)", NULL};
	char **rest;
	int n_rest;
	kr_error err = {0};
	setenv("KERUTA_DOCUMENT_ID", "d1,,d2", 1);
	kr_settings *s = kr_settings_new();
	cr_assert_eq(kr_settings_parse_args(s, KR_CMD_INIT, 4, argv, 2, &rest, &n_rest, &err), 0);
	cr_expect_eq(kr_settings_list_count(s, KR_S_DOCUMENT_ID), 2, "the list is split");
	cr_expect_str_eq(kr_settings_list_item(s, KR_S_DOCUMENT_ID, 1), "d2");
	free(rest);
	kr_settings_free(s);
	unsetenv("KERUTA_DOCUMENT_ID"); /* a task without documents */
	s = kr_settings_new();
	cr_assert_eq(kr_settings_parse_args(s, KR_CMD_INIT, 4, argv, 2, &rest, &n_rest, &err), 0);
	cr_expect_eq(kr_settings_list_count(s, KR_S_DOCUMENT_ID), 0, "no document asked for");
	free(rest);
	kr_settings_free(s);
	clear_env();
}

Test(settings, document_ids_repeat_and_split)
{
	clear_env();
	kr_settings *s = kr_settings_new();
	char *argv[] = {"k", "init", "--document-id", "d1", "--document-id=d2", NULL};
	char **rest;
	int n_rest;
	kr_error err = {0};
	cr_assert_eq(kr_settings_parse_args(s, KR_CMD_INIT, 5, argv, 2, &rest, &n_rest, &err), 0);
	setenv("KERUTA_DOCUMENT_ID", "e1,e2", 1);
	kr_settings_apply_env(s, &err);
	cr_expect_eq(kr_settings_list_count(s, KR_S_DOCUMENT_ID), 2, "flags win over env");
	cr_expect_str_eq(kr_settings_list_item(s, KR_S_DOCUMENT_ID, 1), "d2");
	free(rest);
	kr_settings_free(s);
	s = kr_settings_new();
	kr_settings_apply_env(s, &err);
	cr_expect_eq(kr_settings_list_count(s, KR_S_DOCUMENT_ID), 2);
	cr_expect_str_eq(kr_settings_list_item(s, KR_S_DOCUMENT_ID, 0), "e1");
	kr_settings_free(s);
	clear_env();
}

Test(settings, bad_values_and_unknown_flags_are_refused)
{
	clear_env();
	char **rest;
	int n_rest;
	kr_settings *s = kr_settings_new();
	kr_error err = {0};
	char *a1[] = {"k", "execute", "--wrok-dir", "/x", NULL};
	cr_expect_neq(kr_settings_parse_args(s, KR_CMD_EXECUTE, 4, a1, 2, &rest, &n_rest, &err), 0);
	cr_expect(strstr(err.msg, "unknown option '--wrok-dir'; did you mean '--work-dir'?") != NULL,
	          "%s", err.msg);
	free(rest);
	kr_error_clear(&err);
	char *a2[] = {"k", "execute", "--grace-period", "soon", NULL};
	cr_expect_neq(kr_settings_parse_args(s, KR_CMD_EXECUTE, 4, a2, 2, &rest, &n_rest, &err), 0);
	cr_expect(strstr(err.msg, "--grace-period must be a duration") != NULL, "%s", err.msg);
	free(rest);
	kr_error_clear(&err);
	char *a3[] = {"k", "execute", "--task-id", NULL};
	cr_expect_neq(kr_settings_parse_args(s, KR_CMD_EXECUTE, 3, a3, 2, &rest, &n_rest, &err), 0);
	cr_expect(strstr(err.msg, "option --task-id needs a value") != NULL, "%s", err.msg);
	free(rest);
	kr_error_clear(&err);
	setenv("KERUTA_LOG_LEVEL", "chatty", 1);
	cr_expect_neq(kr_settings_apply_env(s, &err), 0);
	cr_expect(strstr(err.msg, "environment variable KERUTA_LOG_LEVEL") != NULL, "%s", err.msg);
	/* a flag of another command is unknown here */
	free(NULL);
	kr_settings_free(s);
	clear_env();
	s = kr_settings_new();
	kr_error_clear(&err);
	char *a4[] = {"k", "run", "--source-pod", "p", NULL};
	cr_expect_neq(kr_settings_parse_args(s, KR_CMD_RUN, 4, a4, 2, &rest, &n_rest, &err), 0);
	free(rest);
	kr_settings_free(s);
}
