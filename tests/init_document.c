/*
 * The document stage through the real binary in local mode: documents
 * land in .keruta/documents under names that can never leave it, within
 * the size cap, byte for byte, each id once.
 */
#include "init_harness.c"

#define DOC_PHASE "  init: [document]\n"

static char *doc_read(kx *x, const char *name, size_t *len)
{
	char *rel = kt_path(".keruta/documents", name);
	char *t = kx_read(x->work, rel, len);
	free(rel);
	return t;
}

static void assert_doc(kx *x, const char *name, const char *content)
{
	size_t len = 0;
	char *t = doc_read(x, name, &len);
	cr_assert_not_null(t, "no document file '%s'; log:\n%s", name, x->log);
	/* the length too: bytes after a NUL would hide from a string compare */
	cr_assert_eq(len, strlen(content), "document '%s' holds %zu bytes", name, len);
	cr_assert_str_eq(t, content, "document '%s'", name);
	free(t);
}

Test(document, hostile_names_stay_inside)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	char longname[301];
	memset(longname, 'a', 297);
	memcpy(longname + 297, ".md", 4);
	/* an absolute name: a file of this test's own, never a system file
	 * (under a mutant that drops the check, the write would happen) */
	char *victim = kt_path(x.dir, "victim"), *flat = strdup(victim);
	for (char *p = flat; *p; p++)
		if (*p == '/')
			*p = '_';
	char *task = NULL;
	cr_assert(asprintf(&task,
	                   "id: t-1\n"
	                   "documents:\n"
	                   "  - {id: d1, name: \"../../x\", content: c1}\n"
	                   "  - {id: d2, name: \"%s\", content: c2}\n"
	                   "  - {id: d3, name: \"..\", content: c3}\n"
	                   "  - {id: d4, name: \".\", content: c4}\n"
	                   "  - {id: d5, name: \"line\\nbreak.md\", content: c5}\n"
	                   "  - {id: d6, name: \"nul\\0byte.md\", content: c6}\n"
	                   "  - {id: d7, name: \"%s\", content: c7}\n"
	                   "  - {id: d8, name: \"\", content: c8}\n"
	                   "  - {id: \"../evil-id\", content: c9}\n"
	                   "  - {id: d10, name: \".hidden\", content: c10}\n"
	                   "  - {id: d11, name: \"a/../../b\", content: c11}\n"
	                   "  - {id: d12, name: \"tab\\there\\x7f\\r.txt\", content: c12}\n",
	                   victim, longname) > 0);
	kt_write_file(x.task, task);
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);

	/* nothing outside the task's documents/ (.keruta/documents and
	 * .keruta/doc are the links the agent points at the task's own) */
	cr_assert_eq(kx_count_entries(x.work), 1, "the work dir holds more than .keruta");
	char *area = kt_path(x.work, ".keruta");
	cr_assert_eq(kx_count_entries(area), 3, ".keruta holds more than tasks/, doc, documents");
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 12, "%s", x.log);
	cr_assert_neq(access(victim, F_OK), 0, "a document was written to %s", victim);

	assert_doc(&x, "_.._x", "c1");
	assert_doc(&x, flat, "c2");
	assert_doc(&x, "d3", "c3");
	assert_doc(&x, "d4", "c4");
	assert_doc(&x, "line_break.md", "c5");
	assert_doc(&x, "d8", "c8");
	assert_doc(&x, "_evil-id", "c9");
	assert_doc(&x, "hidden", "c10");
	assert_doc(&x, "a_.._.._b", "c11");
	assert_doc(&x, "tab_here__.txt", "c12");
	/* 300 bytes: cut to 200, the extension kept */
	char cut[201];
	memset(cut, 'a', 197);
	memcpy(cut + 197, ".md", 4);
	assert_doc(&x, cut, "c7");

	/* every name: no '/', no leading '.', no control bytes, <= 200 bytes */
	DIR *d = opendir(docs);
	struct dirent *e;
	int c6 = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		cr_assert_neq(e->d_name[0], '.', "hidden name %s", e->d_name);
		cr_assert_leq(strlen(e->d_name), 200);
		for (const char *p = e->d_name; *p; p++)
			cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in %s",
			          e->d_name);
		char *t = doc_read(&x, e->d_name, NULL);
		c6 += t && strcmp(t, "c6") == 0;
		free(t);
	}
	closedir(d);
	cr_assert_eq(c6, 1, "the document with a NUL in its name is missing");
	free(victim), free(flat);
	free(area);
	free(docs);
	free(task);
	kx_free(&x);
}

Test(document, oversized_is_refused_without_a_partial_file)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, "  document: {plugin: document, with: {max_size: 1KB}}\n");
	char big[2000];
	memset(big, 'z', sizeof(big));
	kx_write_bytes(x.dir, "big.bin", big, sizeof(big));
	kt_write_file(x.task, "id: t-1\ndocuments: [{id: big, name: big.bin, path: big.bin}]\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "limit"), "%s", x.termtext);
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 0, "a partial or temporary file was left");
	free(docs);
	kx_free(&x);
}

/* A {path:} that is a FIFO hung the agent for good: refused, named. */
Test(document, fifo_as_the_path_is_refused, .timeout = 60)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, "  document: {plugin: document}\n");
	char *fifo = kt_path(x.dir, "pipe");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	kt_write_file(x.task, "id: t-1\ndocuments: [{id: p, name: p.md, path: pipe}]\n");
	kx_agent(&x, "init", NULL, NULL);
	/* the task file's own check, before any stage: never a hang */
	cr_assert_eq(x.r.status, 2, "%s", x.log);
	cr_expect(kt_contains(x.log, "task.yaml:2:") && kt_contains(x.log, "not a regular file"), "%s",
	          x.log);
	free(fifo);
	kx_free(&x);
}

Test(document, oversized_inline_is_refused)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, "  document: {plugin: document, with: {max_size: 10}}\n");
	kt_write_file(x.task, "id: t-1\ndocuments: [{id: d, name: a.md, content: "
	                      "\"more than ten bytes\"}]\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 0);
	free(docs);
	kx_free(&x);
}

Test(document, binary_content_byte_for_byte)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	size_t n = 1 << 20;
	unsigned char *data = malloc(n);
	uint32_t s = 12345;
	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		data[i] = i < 256 ? (unsigned char)i : (unsigned char)(s >> 16);
	}
	kx_write_bytes(x.dir, "blob.bin", data, n);
	kt_write_file(x.task, "id: t-1\ndocuments: [{id: b, name: blob.bin, path: blob.bin}]\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	size_t len = 0;
	char *got = doc_read(&x, "blob.bin", &len);
	cr_assert_not_null(got);
	cr_assert_eq(len, n);
	cr_assert(memcmp(got, data, n) == 0, "content differs");
	free(got);
	free(data);
	kx_free(&x);
}

Test(document, collisions_get_suffixes_and_reruns_replace)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\n"
	                      "documents:\n"
	                      "  - {id: a, name: same.md, content: one}\n"
	                      "  - {id: b, name: same.md, content: two}\n"
	                      "  - {id: c, name: same.md, content: three}\n"
	                      "  - {id: d, name: README, content: four}\n"
	                      "  - {id: e, name: README, content: five}\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_doc(&x, "same.md", "one");
	assert_doc(&x, "same-1.md", "two");
	assert_doc(&x, "same-2.md", "three");
	/* a name without an extension takes its suffix at the end */
	assert_doc(&x, "README", "four");
	assert_doc(&x, "README-1", "five");
	/* a second run on the same volume (a child task's PVC) */
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 5);
	assert_doc(&x, "same-2.md", "three");
	free(docs);
	kx_free(&x);
}

Test(document, ids_from_flag_and_env_fetched_once)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\n"
	                      "documents:\n"
	                      "  - {id: d1, name: one.md, content: '1'}\n"
	                      "  - {id: d2, name: two.md, content: '2'}\n");
	const char *args[] = {"--document-id", "d1", NULL};
	const char *env[] = {"KERUTA_DOCUMENT_ID=d2,d1", NULL};
	kx_agent(&x, "init", args, env);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	char *docs = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(kx_count_entries(docs), 2, "%s", x.log);
	assert_doc(&x, "one.md", "1");
	assert_doc(&x, "two.md", "2");
	free(docs);
	kx_free(&x);
}

Test(document, unknown_id_fails)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	const char *args[] = {"--document-id", "nope", NULL};
	kx_agent(&x, "init", args, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "nope"), "%s", x.termtext);
	kx_free(&x);
}

Test(document, no_documents_skips)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "no documents"), "%s", x.log);
	kx_free(&x);
}

Test(document, planted_documents_symlink_is_replaced)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	char *elsewhere = kt_path(x.dir, "elsewhere");
	cr_assert_eq(mkdir(elsewhere, 0755), 0);
	char *area = kt_path(x.work, ".keruta");
	cr_assert_eq(mkdir(area, 0755), 0);
	char *link = kt_path(x.work, ".keruta/documents");
	cr_assert_eq(symlink(elsewhere, link), 0);
	kt_write_file(x.task, "id: t-1\ndocuments: [{id: d1, name: a.md, content: x}]\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(kx_count_entries(elsewhere), 0, "written through the link: %s", x.log);
	char *doc = kx_read(x.work, ".keruta/tasks/t-1/documents/a.md", NULL);
	cr_assert_str_eq(doc ? doc : "", "x");
	free(doc);
	free(elsewhere);
	free(area);
	free(link);
	kx_free(&x);
}

/* A documents directory nothing can be created in (immutable): the stage
 * fails naming it, not pass with the documents missing. */
Test(document, documents_dir_that_takes_no_file_fails)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  init: [document]\n", NULL);
	kt_write_file(x.task, "id: t-1\ndocuments: [{id: d1, name: a.md, content: x}]\n");
	char *dir = kx_mk(x.work, ".keruta/tasks/t-1/documents");
	cr_assert_eq(mkdir(dir, 0755), 0);
	if (kt_immutable(dir, 1) != 0) {
		free(dir);
		kx_free(&x);
		cr_skip_test("needs root and a file system with the immutable attribute (chattr +i)");
	}
	kx_agent(&x, "init", NULL, NULL);
	kt_immutable(dir, 0);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.log, "cannot create a temporary file in"), "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/documents/a.md"));
	free(dir);
	kx_free(&x);
}

/* Names the document stage has to shorten or move: trailing blanks go;
 * a name over 200 bytes keeps its extension and is cut at a character
 * boundary (UTF-8 'é' is two bytes), an extension over 32 bytes is not
 * kept; a second document of the same long name gets "-1" within the
 * limit; a directory the task left under a name is passed by; a name and
 * an id that sanitise to nothing give "document". */
/* Every name a document could take is a directory of the task's own
 * (a reused volume): the stage fails naming the document, and leaves no
 * temporary file behind. */
Test(document, no_free_name_fails_and_leaves_no_temporary_file)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\ndocuments:\n  - {id: d1, name: x.md, content: c1}\n");
	kx_write(x.work, ".keruta/tasks/t-1/documents/x.md/keep", "the task's own");
	char *docs = kt_path(x.work, ".keruta/tasks/t-1/documents");
	for (int i = 1; i < 10000; i++) {
		char name[4200];
		snprintf(name, sizeof(name), "%s/x-%d.md", docs, i);
		cr_assert_eq(mkdir(name, 0755), 0, "%s", name);
	}
	kx_agent(&x, "init", NULL, NULL);
	cr_expect_neq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "cannot move document 'd1'"), "%s", x.log);
	cr_expect_eq(kx_count_entries(docs), 10000, "a file was left next to the 10,000 directories");
	free(docs);
	kx_free(&x);
}

Test(document, long_odd_and_taken_names_are_made_to_fit)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, DOC_PHASE, NULL);
	char accents[501] = "", odd[502] = "a", longext[300], longname[301];
	for (int i = 0; i < 250; i++) {
		strcat(accents, "\xc3\xa9");
		strcat(odd, "\xc3\xa9");
	}
	memset(longext, 'b', 250);
	longext[250] = '.';
	memset(longext + 251, 'x', 40);
	longext[291] = '\0';
	memset(longname, 'L', 300);
	longname[300] = '\0';
	char *task = NULL;
	cr_assert(asprintf(&task,
	                   "id: t-1\n"
	                   "documents:\n"
	                   "  - {id: d1, name: \"report.md   \", content: c1}\n"
	                   "  - {id: d2, name: \"%s.md\", content: c2}\n"
	                   "  - {id: d3, name: \"%s.md\", content: c3}\n"
	                   "  - {id: d4, name: \"%s\", content: c4}\n"
	                   "  - {id: d5, name: \"%s\", content: c5}\n"
	                   "  - {id: d6, name: \"%s\", content: c6}\n"
	                   "  - {id: d7, name: \"taken.md\", content: c7}\n"
	                   "  - {id: \"...\", name: \" . \", content: c8}\n",
	                   accents, odd, longext, longname, longname) > 0);
	kt_write_file(x.task, task);
	kx_write(x.work, ".keruta/tasks/t-1/documents/taken.md/keep", "the task's own");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);

	assert_doc(&x, "report.md", "c1");
	char want[256];
	/* 98 whole characters fit in the 197 bytes before ".md" */
	snprintf(want, sizeof(want), "%.196s.md", accents);
	assert_doc(&x, want, "c2");
	snprintf(want, sizeof(want), "%.197s.md", odd);
	assert_doc(&x, want, "c3");
	snprintf(want, sizeof(want), "%.200s", longext);
	assert_doc(&x, want, "c4");
	snprintf(want, sizeof(want), "%.200s", longname);
	assert_doc(&x, want, "c5");
	snprintf(want, sizeof(want), "%.198s-1", longname);
	assert_doc(&x, want, "c6");
	assert_doc(&x, "taken-1.md", "c7");
	char *keep = doc_read(&x, "taken.md/keep", NULL);
	cr_expect_str_eq(keep, "the task's own");
	free(keep);
	assert_doc(&x, "document", "c8");
	free(task);
	kx_free(&x);
}
