/*
 * run_taskfile.c - a task file is checked strictly before any stage runs:
 * a typo at any level, a value of the wrong type or a {path: FILE} that
 * cannot be read ends the run with exit 2 and file:line:col, and
 * `keruta-agent validate --task-file` makes the same check.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_common.h"

/* Runs the task with a pipeline whose only stage would leave a marker;
 * expects exit 2, each of the needles in stderr and no marker. */
static void refused(const char *task_yaml, const char *const *needles)
{
	kf r;
	kf_init(&r, task_yaml);
	char *marker = kt_path(r.dir, "stage-ran");
	char *with = NULL;
	if (asprintf(&with, "      argv: [/bin/touch, \"%s\"]\n", marker) < 0)
		abort();
	rt_simple_pipeline(&r, with, NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 2, "exit %d: %s", res.status, res.err);
	for (size_t i = 0; needles[i]; i++)
		cr_expect(kt_contains(res.err, needles[i]), "'%s' not in: %s", needles[i], res.err);
	cr_expect_neq(access(marker, F_OK), 0, "a stage ran for a refused task file");
	kt_result_free(&res);

	/* validate says the same, without running anything */
	const char *argv[] = {kt_agent(), "validate", "--task-file", r.task, "--log-format", "text",
	                      NULL};
	cr_assert_eq(kt_run(&res, argv, NULL, r.dir, NULL, 30), 0);
	cr_expect_eq(res.status, 2, "validate exit %d: %s", res.status, res.err);
	for (size_t i = 0; needles[i]; i++)
		cr_expect(kt_contains(res.err, needles[i]), "validate: '%s' not in: %s", needles[i],
		          res.err);
	kt_result_free(&res);
	free(with);
	free(marker);
	kf_free(&r);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(run_taskfile, top_level_typo_is_refused_with_a_suggestion)
{
	refused("id: t-1\nrepositroy: /tmp/nowhere.git\n",
	        NEEDLES("task.yaml:2:1: unknown key 'repositroy'", "did you mean 'repository'?"));
}

Test(run_taskfile, misspelled_script_key_is_refused_before_any_stage)
{
	refused("id: t-1\nexectueScript: echo hi\n",
	        NEEDLES("task.yaml:2:1: unknown key 'exectueScript'", "did you mean 'executeScript'?"));
}

Test(run_taskfile, typo_inside_repository_is_refused)
{
	refused("id: t-1\nrepository:\n  uri: /tmp/x.git\n",
	        NEEDLES("task.yaml:3:3: unknown key 'uri' in 'repository'", "did you mean 'url'?"));
}

Test(run_taskfile, repository_without_url_is_refused)
{
	refused("id: t-1\nrepository: {ref: main}\n", NEEDLES("task.yaml:2:13: 'repository' has no 'url'"));
}

Test(run_taskfile, typo_inside_a_document_is_refused)
{
	refused("id: t-1\ndocuments:\n  - id: d1\n    content: hi\n    nmae: notes.md\n",
	        NEEDLES("task.yaml:5:5: unknown key 'nmae' in document 1"));
}

Test(run_taskfile, typo_inside_a_script_source_is_refused)
{
	refused("id: t-1\nexecuteScript: {pth: run.sh}\n",
	        NEEDLES("task.yaml:2:17: unknown key 'pth' in 'executeScript'", "did you mean 'path'?"));
}

Test(run_taskfile, env_value_must_be_a_string)
{
	refused("id: t-1\nenv:\n  A: ok\n  B: [1, 2]\n",
	        NEEDLES("task.yaml:4:6: 'env.B' must be a string, not a list"));
	refused("id: t-1\nenv:\n  EMPTY:\n", NEEDLES("'env.EMPTY' must be a string, not empty"));
}

Test(run_taskfile, wrong_types_are_refused)
{
	refused("id: t-1\ntitle: [a, b]\n", NEEDLES("task.yaml:2:8: 'title' must be a string, not a list"));
	refused("id: t-1\nrepository: [a]\n", NEEDLES("'repository' must be a URL or {url, ref}"));
	refused("id: t-1\ncommand: echo\n", NEEDLES("'command' must be a list of strings"));
	refused("id: t-1\ndocuments: {id: x}\n", NEEDLES("'documents' must be a list"));
}

Test(run_taskfile, two_names_for_one_field_are_refused)
{
	refused("id: t-1\ntitle: a\nname: b\n", NEEDLES("'title' and 'name' name the same field"));
}

Test(run_taskfile, missing_script_path_is_refused_before_any_stage)
{
	refused("id: t-1\nexecuteScript: {path: missing.sh}\n",
	        NEEDLES("task.yaml:2:23: 'executeScript': cannot read", "missing.sh",
	                "No such file or directory"));
}

Test(run_taskfile, missing_document_path_is_refused_before_any_stage)
{
	refused("id: t-1\ndocuments:\n  - {id: d1, path: notes/missing.md}\n",
	        NEEDLES("task.yaml:3:20: document 1: cannot read", "notes/missing.md"));
}

Test(run_taskfile, a_task_without_id_is_refused)
{
	refused("title: no id\n", NEEDLES("the task has no 'id'"));
}

/* Each kind of field refuses what it cannot be, at the value's own
 * file:line:col: text, script sources, env, lists, documents,
 * repository, resources. */
Test(run_taskfile, a_task_file_that_is_not_a_mapping_is_refused)
{
	refused("- id: t-1\n", NEEDLES("task.yaml:1:1: a task file must be a mapping of fields "
	                               "(id:, title:, repository:, ...), not a list"));
}

Test(run_taskfile, an_empty_id_and_nul_bytes_are_refused)
{
	refused("id:\ntitle: x\n", NEEDLES("task.yaml:1:", "'id' must be a string, not empty"));
	refused("id: t-1\ntitle: \"a\\0b\"\n", NEEDLES("task.yaml:2:8: 'title' contains a NUL byte"));
}

Test(run_taskfile, script_sources_are_checked)
{
	refused("id: t-1\nexecuteScript: {path: a.sh, content: x}\n",
	        NEEDLES("task.yaml:2:16: 'executeScript' has both 'path' and 'content'; keep one"));
	refused("id: t-1\ninstallScript: {}\n",
	        NEEDLES("task.yaml:2:16: 'installScript' needs 'path: FILE' or 'content: TEXT'"));
	refused("id: t-1\ncleanupScript: [a]\n",
	        NEEDLES("task.yaml:2:16: 'cleanupScript' must be text, {path: FILE} or "
	                "{content: TEXT}, not a list"));
	refused("id: t-1\nscript: {content: [a]}\n",
	        NEEDLES("task.yaml:2:19: 'content' must be text, not a list"));
	refused("id: t-1\nscript: {path: [a.sh]}\n",
	        NEEDLES("task.yaml:2:16: 'script' must be a string, not a list"));
	refused("id: t-1\nscript: {path: .}\n",
	        NEEDLES("task.yaml:2:16: 'script': cannot read", "not a regular file"));
}

Test(run_taskfile, a_script_path_the_agent_cannot_read_is_refused)
{
	if (geteuid() == 0)
		cr_skip_test("root reads a file of mode 0000: the refusal needs a user without "
		             "CAP_DAC_OVERRIDE");
	char *dir = kt_tmpdir();
	char *script = kt_path(dir, "locked.sh");
	kt_write_file(script, "echo hi\n");
	cr_assert_eq(chmod(script, 0), 0);
	char *task = NULL;
	cr_assert(asprintf(&task, "id: t-1\nscript: {path: '%s'}\n", script) > 0);
	refused(task, NEEDLES("'script': cannot read", "locked.sh': Permission denied"));
	free(task);
	free(script);
	kt_rmrf(dir);
	free(dir);
}

Test(run_taskfile, env_names_and_values_are_checked)
{
	refused("id: t-1\nenv: [A=1]\n",
	        NEEDLES("task.yaml:2:6: 'env' must be a mapping of NAME: value, not a list"));
	refused("id: t-1\nenvironment: {'A=B': x}\n",
	        NEEDLES("task.yaml:2:15: 'environment' name 'A=B' must be 1 to 255 characters "
	                "without '='"));
	refused("id: t-1\nenv: {'': x}\n", NEEDLES("'env' name '' must be 1 to 255 characters"));
	refused("id: t-1\nenv: {A: \"x\\0y\"}\n", NEEDLES("task.yaml:2:10: 'env.A' contains a NUL byte"));
	refused("id: t-1\nenv: {A: x}\nenvironment: {B: y}\n",
	        NEEDLES("task.yaml:3:14: 'env' and 'environment' name the same field; keep one"));
}

Test(run_taskfile, lists_of_ids_and_strings_are_checked)
{
	refused("id: t-1\ndocumentIds: d1\n",
	        NEEDLES("task.yaml:2:14: 'documentIds' must be a list of ids, not a scalar"));
	refused("id: t-1\ndocumentIds: [d1, [d2]]\n",
	        NEEDLES("task.yaml:2:19: entry 2 of 'documentIds' must be a string, not a list"));
	refused("id: t-1\ncommand: [echo, {a: b}]\n",
	        NEEDLES("task.yaml:2:17: entry 2 of 'command' must be a string, not a mapping"));
}

Test(run_taskfile, documents_are_checked_entry_by_entry)
{
	refused("id: t-1\ndocuments: [[a]]\n",
	        NEEDLES("task.yaml:2:13: document 1 must be an id or {id, name, path|content}, not "
	                "a list"));
	refused("id: t-1\ndocuments: [d1, ~]\n", NEEDLES("document 2 must be a string, not empty"));
	refused("id: t-1\ndocuments:\n  - {name: a.md, content: x}\n",
	        NEEDLES("task.yaml:3:5: document 1 has no 'id'"));
	refused("id: t-1\ndocuments:\n  - {id: [x], content: y}\n",
	        NEEDLES("task.yaml:3:10: a document's 'id' must be a string, not a list"));
	refused("id: t-1\ndocuments:\n  - {id: a, name: [x], content: y}\n",
	        NEEDLES("task.yaml:3:19: a document's 'name' must be a string, not a list"));
	refused("id: t-1\ndocuments:\n  - {id: a}\n",
	        NEEDLES("task.yaml:3:5: document 1 needs 'path: FILE' or 'content: TEXT'"));
}

Test(run_taskfile, repository_fields_are_checked)
{
	refused("id: t-1\nrepository: {url: [x]}\n",
	        NEEDLES("task.yaml:2:19: 'repository.url' must be a string, not a list"));
	refused("id: t-1\nrepository: {url: /r.git, branch: a, ref: b}\n",
	        NEEDLES("task.yaml:2:13: 'repository' has both 'branch' and 'ref'; keep one"));
}

Test(run_taskfile, resources_are_checked)
{
	refused("id: t-1\nresources: 2\n",
	        NEEDLES("task.yaml:2:12: 'resources' must be {requests: {...}, limits: {...}}, not "
	                "a scalar"));
	refused("id: t-1\nresources: {limit: {cpu: 1}}\n",
	        NEEDLES("task.yaml:2:13: unknown key 'limit' in 'resources'", "did you mean 'limits'?"));
	refused("id: t-1\nresources: {limits: 1Gi}\n",
	        NEEDLES("task.yaml:2:21: 'resources.limits' must be a mapping like {cpu: 500m, "
	                "memory: 1Gi}, not a scalar"));
	refused("id: t-1\nresources: {limits: {cpu: [1]}}\n",
	        NEEDLES("task.yaml:2:27: 'resources.limits.cpu' must be a string, not a list"));
}

Test(run_taskfile, every_documented_field_is_accepted)
{
	kf r;
	kf_init(&r, NULL);
	char *script = kt_path(r.dir, "run.sh");
	kt_write_file(script, "echo from-file\n");
	kt_write_file(r.task,
	              "id: t-1\ntitle: all\ndescription: d\npriority: 2\nstatus: PENDING\n"
	              "createdAt: x\nupdatedAt: y\nrepositoryId: r\nparentId: p\n"
	              "repository: /tmp/repo.git\n"
	              "documents:\n  - {id: a, name: a.md, content: hi}\n  - b\n"
	              "env: {A: '1', B: 2}\nexecuteScript: {path: run.sh}\n"
	              "installScript: echo i\ncleanupScript: {content: echo c}\n"
	              "image: img\nresources: {requests: {cpu: 100m}, limits: {memory: 1Gi}}\n"
	              "command: [sh, -c, 'echo x']\npvcStorageSize: 1Gi\npvcAccessMode: ReadWriteOnce\n"
	              "pvcStorageClass: fast\npvcName: data\n");
	const char *argv[] = {kt_agent(), "validate", "--task-file", r.task, NULL};
	kt_result res;
	cr_assert_eq(kt_run(&res, argv, NULL, r.dir, NULL, 30), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "valid task file"), "%s", res.out);
	kt_result_free(&res);
	free(script);
	kf_free(&r);
}

Test(run_taskfile, script_from_a_path_runs)
{
	kf r;
	kf_init(&r, "id: t-1\nexecuteScript: {path: run.sh}\n");
	char *script = kt_path(r.dir, "run.sh");
	kt_write_file(script, "#!/bin/sh\necho from-file\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "from-file\n"), "%s", res.out);
	kt_result_free(&res);
	free(script);
	kf_free(&r);
}

/* `repository: URL` (a plain string) is the URL the clone stage uses;
 * null fields count as not given. */
Test(run_taskfile, a_repository_given_as_a_url_is_what_the_clone_uses)
{
	kf r;
	kf_init(&r, "id: t-1\nrepository: /nonexistent/repo.git\ntitle: ~\nimage: ~\n"
	            "script: \"touch ran\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [clone, execute]\nstages:\n"
	               "  clone: {plugin: clone}\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1, "exit %d: %s", res.status, res.err);
	cr_expect(kt_contains(res.err, "clone: repository /nonexistent/repo.git does not exist"),
	          "%s", res.err);
	char *ran = kt_path(r.work, "ran");
	cr_expect_neq(access(ran, F_OK), 0, "the script ran without its repository");
	free(ran);
	kt_result_free(&res);
	kf_free(&r);
}

/* A repository named by id only is keruta-api's record: render accepts it,
 * but a local run cannot find its URL and says so instead of skipping the
 * clone and running the script in an empty directory. */
Test(run_taskfile, repository_id_without_url_fails_the_clone_in_local_mode)
{
	kf r;
	kf_init(&r, "id: t-1\nrepository: {id: repo-7}\nscript: \"touch ran\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [clone, execute]\nstages:\n"
	               "  clone: {plugin: clone}\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1, "exit %d: %s", res.status, res.err);
	cr_expect(kt_contains(res.err, "repository 'repo-7' but no URL"), "%s", res.err);
	char *ran = kt_path(r.work, "ran");
	cr_expect_neq(access(ran, F_OK), 0, "the script ran without its repository");
	free(ran);
	kt_result_free(&res);
	kf_free(&r);
}
