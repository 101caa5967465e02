/*
 * The pipeline reader: malformed files are reported with the exact line
 * and column, and well-formed ones are read as written.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"
#include "pipeline.h"
#include "secret.h"
#include "util.h"

typedef struct bad_case {
	const char *text;
	const char *where;   /* "line:col" expected after the file name */
	const char *message; /* a fragment of the message */
} bad_case;

#define OK_HEAD "version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x}\n"

static const bad_case bad_cases[] = {
        /* 1 */ {"", "1:1", "the file is empty"},
        /* 2 */ {"# only a comment\n", "1:1", "the file is empty"},
        /* 3 */ {"- a\n- b\n", "1:1", "must be a mapping"},
        /* 4 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a:\n\tplugin: x\n", "6:1",
                 "tab character in indentation"},
        /* 5 */ {"version: 1\nversoin: 2\n", "2:1", "did you mean 'version'"},
        /* 6 */ {"phases: {}\n", "1:1", "missing 'version: 1'"},
        /* 7 */ {"version: 2\nphases: {}\n", "1:10", "unsupported pipeline version '2'"},
        /* 8 */ {"version: one\nphases: {}\n", "1:10", "unsupported pipeline version 'one'"},
        /* 9 */ {"version: 1\n", "1:1", "missing 'phases:'"},
        /* 10 */ {"version: 1\nphases:\n  exec: [a]\nstages:\n  a: {}\n", "3:3",
                  "unknown phase 'exec'"},
        /* 11 */ {"version: 1\nphases:\n  execute: [a, b]\nstages:\n  a: {plugin: x}\n", "3:16",
                  "lists stage 'b', which is not defined"},
        /* 12 */ {"version: 1\nphases:\n  execute: a\nstages:\n  a: {plugin: x}\n", "3:12",
                  "phase 'execute' must be a list"},
        /* 13 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x, tmeout: 5s}\n",
                  "5:18", "unknown key 'tmeout' in stage 'a' (did you mean 'timeout'?)"},
        /* 14 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x, when: sometimes}\n",
                  "5:24", "'when' must be on_success, on_failure or always"},
        /* 15 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x, timeout: soon}\n",
                  "5:27", "'timeout' must be a duration"},
        /* 16 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x, timeout: 0s}\n",
                  "5:27", "'timeout' must be a duration"},
        /* 17 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: [x]}\n", "5:15",
                  "'plugin' must be a string, not a list"},
        /* 18 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x, with: [1]}\n",
                  "5:24", "'with' must be a mapping"},
        /* 19 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x}\n  a: {plugin: y}\n",
                  "6:3", "duplicate key 'a' (first at line 5)"},
        /* 20 */ {"version: 1\nversion: 1\n", "2:1", "duplicate key 'version'"},
        /* 21 */ {OK_HEAD "---\nversion: 1\n", "6:1", "a second YAML document"},
        /* 22 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: &x {plugin: x}\n", "5:6",
                  "anchors"},
        /* 23 */ {"version: 1\nphases:\n  execute: [*a]\n", "3:13", "aliases"},
        /* 24 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  \"a b\": {plugin: x}\n", "5:3",
                  "stage name 'a b' may hold only"},
        /* 25 */ {"version: 1\nphases:\n  execute: [a]\nstages: [a]\n", "4:9",
                  "'stages' must be a mapping"},
        /* 26 */ {"version: 1\nplugin_path: {a: b}\nphases: {}\n", "2:14",
                  "'plugin_path' must be a list"},
        /* 27 */ {"version: 1\nsettings:\n  work_dri: /w\nphases: {}\n", "3:3",
                  "unknown key 'work_dri' in 'settings' (did you mean 'work_dir'?)"},
        /* 28 */ {"version: 1\nsettings:\n  log_level: loud\nphases: {}\n", "3:14",
                  "must be debug, info, warn or error"},
        /* 29 */ {"version: 1\nsettings:\n  grace_period: forever\nphases: {}\n", "3:17",
                  "must be a duration"},
        /* 30 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x\n", "6:1",
                  "did not find expected ',' or '}'"},
        /* 31 */ {"version: 1\nphases:\n  execute: [a\n", "4:1", "did not find expected"},
        /* 32 */ {"version: 1\nphases:\n  [a]: [b]\n", "3:3", "a mapping key must be a plain string"},
        /* 33 */ {"version: 1\nphases:\n  execute: [[a]]\n", "3:13", "a phase entry must be a string"},
        /* 34 */ {"version: 1\nsettings:\n  secrets: TOKEN\nphases: {}\n", "3:12",
                  "setting 'secrets' must be a list"},
        /* 35 */ {"version: 1\nphases:\n  execute: [a]\nstages:\n  a: {plugin: x, description: {}}\n",
                  "5:31", "'description' must be a string"},
        /* 36 */ {"version: 1\nphases: [execute]\n", "2:9", "'phases' must be a mapping, not a list"},
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

/* Criterion may run each test in a re-executed process where pointers in
 * parameters mean nothing, so the parameter is an index into the table. */
ParameterizedTestParameters(pipeline, malformed)
{
	static int indices[N_BAD];
	for (size_t i = 0; i < N_BAD; i++)
		indices[i] = (int)i;
	return cr_make_param_array(int, indices, N_BAD);
}

ParameterizedTest(int *index, pipeline, malformed)
{
	const bad_case *c = &bad_cases[*index];
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_parse("p.yaml", c->text, strlen(c->text), &err);
	cr_assert_null(p, "accepted a malformed pipeline:\n%s", c->text);
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "p.yaml:%s: ", c->where);
	cr_expect_eq(strncmp(err.msg, prefix, strlen(prefix)), 0,
	             "expected position %s, got: %s\n--- file:\n%s", c->where, err.msg, c->text);
	cr_expect(strstr(err.msg, c->message) != NULL, "expected '%s' in: %s", c->message, err.msg);
	cr_expect_eq(err.code, 2, "a pipeline error is a usage error (exit 2)");
}

Test(pipeline, reads_phases_stages_when_and_timeouts)
{
	const char *text = "version: 1\n"
	                   "plugin_path: [/opt/a, /opt/b]\n"
	                   "settings: {work_dir: /w, log_level: debug}\n"
	                   "phases:\n"
	                   "  execute: [fetch, build, fetch-again, report]\n"
	                   "  cleanup: [report]\n"
	                   "stages:\n"
	                   "  fetch: {plugin: fx, with: {url: one}}\n"
	                   "  fetch-again: {plugin: fx, with: {url: two}, timeout: 90s}\n"
	                   "  build: {plugin: fx, timeout: 2h, when: on_success}\n"
	                   "  report: {plugin: other, when: always}\n";
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_parse("ok.yaml", text, strlen(text), &err);
	cr_assert_not_null(p, "%s", err.msg);
	cr_expect_eq(p->n_plugin_path, 2);
	cr_expect_str_eq(p->plugin_path[1], "/opt/b");
	const kr_phase *ex = kr_pipeline_phase(p, "execute");
	cr_assert_eq(ex->n, 4);
	cr_expect_str_eq(ex->stages[0]->name, "fetch");
	cr_expect_str_eq(ex->stages[2]->name, "fetch-again");
	/* one plugin under two names, with its own settings each */
	cr_expect_str_eq(ex->stages[0]->plugin, "fx");
	cr_expect_str_eq(ex->stages[2]->plugin, "fx");
	cr_expect_str_eq(kr_node_get(ex->stages[0]->with, "url")->value, "one");
	cr_expect_str_eq(kr_node_get(ex->stages[2]->with, "url")->value, "two");
	cr_expect_eq(ex->stages[1]->timeout_ms, 7200000u);
	cr_expect_eq(ex->stages[2]->timeout_ms, 90000u);
	cr_expect_eq(ex->stages[3]->when, KR_WHEN_ALWAYS);
	cr_expect_eq(ex->stages[0]->when, KR_WHEN_ON_SUCCESS);
	cr_expect_eq(kr_pipeline_phase(p, "cleanup")->n, 1);
	cr_expect_eq(kr_pipeline_phase(p, "init")->n, 0);
	kr_pipeline_free(p);
}

Test(pipeline, bare_stage_uses_plugin_of_its_name)
{
	const char *text = "version: 1\nphases: {run: [execute]}\nstages:\n  execute:\n";
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_parse("b.yaml", text, strlen(text), &err);
	cr_assert_not_null(p, "%s", err.msg);
	cr_expect_str_eq(kr_pipeline_phase(p, "run")->stages[0]->plugin, "execute");
	kr_pipeline_free(p);
}

Test(pipeline, tab_inside_a_literal_block_is_content)
{
	const char *text = "version: 1\nphases: {}\nstages:\n  a:\n    with:\n      script: |\n"
	                   "        all:\n        \tmake\n";
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_parse("t.yaml", text, strlen(text), &err);
	cr_assert_not_null(p, "%s", err.msg);
	kr_pipeline_free(p);
}

Test(pipeline, shipped_default_pipeline_is_valid)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/conf/pipeline.yaml", getenv("KR_SRCDIR") ? getenv("KR_SRCDIR") : ".");
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_load(path, &err);
	cr_assert_not_null(p, "%s", err.msg);
	cr_expect_gt(kr_pipeline_phase(p, "execute")->n, 0);
	kr_pipeline_free(p);
}

Test(pipeline, missing_file_says_which)
{
	kr_error err = {0};
	cr_assert_null(kr_pipeline_load("/nonexistent/pipeline.yaml", &err));
	cr_expect(strstr(err.msg, "cannot read /nonexistent/pipeline.yaml: No such file") != NULL, "%s", err.msg);
}

Test(pipeline, durations_and_sizes)
{
	uint64_t v;
	cr_expect_eq(kr_parse_duration_ms("30s", &v), 0);
	cr_expect_eq(v, 30000u);
	cr_expect_eq(kr_parse_duration_ms("10m", &v), 0);
	cr_expect_eq(v, 600000u);
	cr_expect_eq(kr_parse_duration_ms("500ms", &v), 0);
	cr_expect_eq(v, 500u);
	cr_expect_eq(kr_parse_duration_ms("1.5h", &v), 0);
	cr_expect_eq(v, 5400000u);
	cr_expect_eq(kr_parse_duration_ms("12", &v), 0);
	cr_expect_eq(v, 12000u);
	cr_expect_neq(kr_parse_duration_ms("-1s", &v), 0);
	cr_expect_neq(kr_parse_duration_ms("5 parsecs", &v), 0);
	cr_expect_neq(kr_parse_duration_ms("", &v), 0);
	cr_expect_eq(kr_parse_size("100MB", &v), 0);
	cr_expect_eq(v, 100000000u);
	cr_expect_eq(kr_parse_size("64KiB", &v), 0);
	cr_expect_eq(v, 65536u);
	cr_expect_eq(kr_parse_size("1G", &v), 0);
	cr_expect_eq(v, 1073741824u);
	cr_expect_neq(kr_parse_size("lots", &v), 0);
	/* beyond what 64 bits hold: refused, not wrapped */
	cr_expect_neq(kr_parse_size("99999999999GiB", &v), 0);
	cr_expect_neq(kr_parse_duration_ms("99999999999999d", &v), 0);
	cr_expect_neq(kr_parse_size("1e400", &v), 0);
}

static char *masked(const char *text)
{
	kr_buf b = {0};
	kr_secret_mask(text, strlen(text), &b);
	return b.data ? b.data : strdup("");
}

/* Only the password of a URL's user info is a secret, wherever the '@'
 * and ':' fall; malformed URLs register nothing and do not crash. */
Test(pipeline, url_passwords_are_masked)
{
	kr_secret_reset();
	static const char *const harmless[] = {NULL, "", "no-scheme", "https://", "https://@",
	                                       "https://:@host", "https://user:@host/",
	                                       "https://user@host/", "user:pw-without-scheme@host",
	                                       "https://host/p?q=u:notapassword@x#y:frag@z"};
	for (size_t i = 0; i < sizeof(harmless) / sizeof(harmless[0]); i++)
		kr_secret_add_url_password(harmless[i]);
	cr_expect_eq(kr_secret_max_len(), 0, "a malformed URL registered a secret");
	char *m = masked("q=u:notapassword@x pw-without-scheme");
	cr_expect_str_eq(m, "q=u:notapassword@x pw-without-scheme");
	free(m);

	kr_secret_add_url_password("https://bob:s3cret-pw@host:8443/api");
	kr_secret_add_url_password("http://alice:p@ss:w@rd@10.0.0.1/");
	m = masked("GET https://bob:s3cret-pw@host:8443/api and http://alice:p@ss:w@rd@10.0.0.1/");
	cr_expect(!strstr(m, "s3cret-pw") && !strstr(m, "p@ss:w@rd"), "%s", m);
	cr_expect(strstr(m, "https://bob:") && strstr(m, "@host:8443/api"), "%s", m);
	free(m);
	kr_secret_reset();
}

static char *masked_stream_one_scan(const char *text, size_t len, const size_t *steps,
                                    size_t nsteps);

/* Mask text as the process runner does, fed in reads of `step` bytes. */
static char *masked_stream(const char *text, size_t step)
{
	return masked_stream_one_scan(text, strlen(text), &step, 1);
}

/* A read that ends exactly after a whole secret whose last bytes equal its
 * first ones, or after a secret whose tail begins another secret, must not
 * be cut inside that secret: each half alone matches nothing. */
Test(pipeline, stream_masking_never_cuts_inside_a_secret)
{
	kr_secret_reset();
	kr_secret_add("eyJhbGciOie");
	kr_secret_add("abcab");
	kr_secret_add("xyzw");
	kr_secret_add("zwQQQ");
	static const char *const text[] = {"token=eyJhbGciOie", "token=eyJhbGciOie\n",
	                                   "a abcab b", "eyJhbGciOieyJhbGciOie!", "1 xyzwQQQ 2",
	                                   "xyzxyzw", "abcabcab", "eeyJhbGciOi"};
	for (size_t t = 0; t < sizeof(text) / sizeof(text[0]); t++) {
		char *whole = masked(text[t]);
		for (size_t step = 1; step <= strlen(text[t]); step++) {
			char *m = masked_stream(text[t], step);
			cr_expect_str_eq(m, whole, "'%s' read %zu bytes at a time", text[t], step);
			cr_expect(!strstr(m, "eyJhbGciOie") && !strstr(m, "abcab") && !strstr(m, "xyzw") &&
			                  !strstr(m, "zwQQQ"),
			          "'%s' read %zu bytes at a time gave '%s'", text[t], step, m);
			free(m);
		}
		free(whole);
	}
	kr_secret_reset();
}

/* The process runner's way (core/proc.c on_data): kr_secret_mask_stream
 * over the held bytes and each read, the masked text or the plain safe
 * prefix written, the rest held. */
static char *masked_stream_one_scan(const char *text, size_t len, const size_t *steps,
                                    size_t nsteps)
{
	kr_buf out = {0}, hold = {0};
	size_t off = 0;
	for (size_t k = 0; off < len; k++) {
		size_t step = steps[k % nsteps];
		size_t n = len - off < step ? len - off : step;
		kr_buf_add(&hold, text + off, n);
		off += n;
		kr_buf part = {0};
		int m = 0;
		size_t safe = kr_secret_mask_stream(hold.data, hold.len, off == len, &part, &m);
		if (m)
			kr_buf_add(&out, part.data, part.len);
		else
			kr_buf_add(&out, hold.data, safe);
		kr_buf_free(&part);
		memmove(hold.data, hold.data + safe, hold.len - safe);
		hold.len -= safe;
	}
	free(hold.data);
	return out.data ? out.data : strdup("");
}

/* Leftmost, longest, resume after the match: what masking means. */
static char *masked_plainly(const char *text, size_t len, const char *const *sec, size_t nsec)
{
	kr_buf out = {0};
	for (size_t i = 0; i < len;) {
		size_t best = 0;
		for (size_t s = 0; s < nsec; s++) {
			size_t l = strlen(sec[s]);
			if (l <= len - i && memcmp(text + i, sec[s], l) == 0 && l > best)
				best = l;
		}
		if (best) {
			kr_buf_adds(&out, KR_SECRET_MASK);
			i += best;
		} else {
			kr_buf_add(&out, text + i, 1);
			i++;
		}
	}
	return out.data ? out.data : strdup("");
}

/* Secrets over a 3-letter alphabet (prefixes of each other, tails that
 * begin others, more than the masker keeps on its stack), random text
 * cut into random reads: whole and streamed masking give exactly what a
 * plain position-by-position scan gives. */
Test(pipeline, stream_masking_matches_a_plain_scan)
{
	static const char *const sec[] = {"abca", "abcabc", "bcab", "cccc", "aabb", "abab",
	                                  "baba", "cabca", "acbacb", "bbbbc", "caac", "abcb",
	                                  "bcbc", "aaaa", "acca", "cbacba", "babc", "ccab",
	                                  "abcabcabc", "cabb"};
	size_t nsec = sizeof(sec) / sizeof(sec[0]);
	kr_secret_reset();
	for (size_t s = 0; s < nsec; s++)
		kr_secret_add(sec[s]);
	unsigned seed = 14;
	char text[301];
	for (int round = 0; round < 300; round++) {
		size_t len = (size_t)(rand_r(&seed) % 300);
		for (size_t i = 0; i < len; i++)
			text[i] = "abc"[rand_r(&seed) % 3];
		text[len] = '\0';
		char *want = masked_plainly(text, len, sec, nsec);
		char *whole = masked(text);
		cr_expect_str_eq(whole, want, "'%s' masked whole", text);
		size_t steps[4];
		for (int k = 0; k < 4; k++)
			steps[k] = 1 + (size_t)(rand_r(&seed) % 12);
		char *m = masked_stream_one_scan(text, len, steps, 4);
		cr_expect_str_eq(m, want, "'%s' in reads of %zu,%zu,%zu,%zu bytes", text, steps[0],
		                 steps[1], steps[2], steps[3]);
		free(m);
		free(whole);
		free(want);
	}
	kr_secret_reset();
}

/* A JSON object of n keys "k0".."k(n-1)", then the extra text (a repeat). */
static char *many_keys(size_t n, const char *extra)
{
	kr_buf b = {0};
	kr_buf_adds(&b, "{");
	for (size_t i = 0; i < n; i++)
		kr_buf_addf(&b, "%s\"k%zu\": %zu", i ? ", " : "", i, i);
	kr_buf_adds(&b, extra);
	kr_buf_adds(&b, "}");
	return b.data;
}

/* Every keruta-api answer goes through the reader: 150,000 keys took
 * minutes when each key was compared with all before it.  The timeout is
 * only a bound against a hang; the test asserts what was read. */
Test(pipeline, many_keys_are_read_and_duplicates_still_found, .timeout = 60)
{
	char *text = many_keys(150000, "");
	kr_node *root = NULL;
	kr_error err = {0};
	cr_assert_eq(kr_node_load_string("big.json", text, strlen(text), &root, &err), 0, "%s",
	             err.msg);
	cr_assert_eq(root->n, 150000);
	const kr_node *v = kr_node_get(root, "k149999");
	cr_assert(v && v->value);
	cr_expect_str_eq(v->value, "149999");
	kr_node_free(root);
	free(text);

	/* the repeat that comes first in the file is named, with where it
	 * first appeared */
	text = many_keys(150000, ", \"k7\": 1, \"k5\": 2, \"k7\": 3");
	cr_assert_neq(kr_node_load_string("big.json", text, strlen(text), &root, &err), 0);
	cr_expect(strstr(err.msg, "duplicate key 'k7' (first at line 1)") != NULL, "%s", err.msg);
	free(text);
}

/* A signal earlier in the agent leaves errno at EINTR; reading a file
 * still ends at its end, with the whole text (a loop that took that
 * stale EINTR for an interrupted read would never end). */
Test(pipeline, reading_a_file_ends_at_its_end_whatever_errno_held, .timeout = 10)
{
	char path[] = "/tmp/kr-read-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "three\nlines\nhere\n", 17), 17);
	close(fd);
	size_t len = 0;
	kr_error err = {0};
	errno = EINTR;
	char *text = kr_read_file(path, 0, &len, 1, "test file", &err);
	unlink(path);
	cr_assert(text, "%s", err.msg);
	cr_expect_eq(len, 17);
	cr_expect_str_eq(text, "three\nlines\nhere\n");
	free(text);
}

/* JSON string escaping (the events file, spool records and /logs bodies
 * carry every shipped byte through it): one byte that needs escaping, or
 * a UTF-8 sequence, at every offset of a 40-byte plain text, so both the
 * 16-byte scan and the byte loop after it meet it. */
Test(pipeline, json_strings_escape_each_byte_at_every_offset)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	        {"\"", "\\\""},       {"\\", "\\\\"},           {"\n", "\\n"},
	        {"\t", "\\t"},        {"\x01", "\\u0001"},      {"\x1f", "\\u001f"},
	        {"\x7f", "\\u007f"},  {"\xc3\xa9", "\xc3\xa9"}, {"\xff", "\\ufffd"},
	        {"~", "~"},           {" ", " "},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t il = strlen(cases[c].in);
		for (size_t k = 0; k + il <= 40; k++) {
			char in[64], want[128];
			memset(in, 'a', 40);
			memcpy(in + k, cases[c].in, il);
			snprintf(want, sizeof(want), "%.*s%s%.*s", (int)k, in, cases[c].out,
			         (int)(40 - k - il), in + k + il);
			kr_buf b = {0};
			kr_buf_add_json_str(&b, in, 40);
			cr_expect_str_eq(b.data, want, "case %zu at offset %zu", c, k);
			kr_buf_free(&b);
		}
	}
}
