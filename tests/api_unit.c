/*
 * api_unit.c - the keruta-api module's parsers of hostile server input:
 * error bodies, Retry-After, Content-Disposition; and path escaping.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void expect_error(const char *body, const char *want)
{
	char *got = kr_http_server_error(body, strlen(body));
	if (want)
		cr_expect_str_eq(got ? got : "(null)", want, "body %s", body);
	else
		cr_expect_null(got, "body %s gave %s", body, got);
	free(got);
}

Test(api_unit, server_error_shapes)
{
	expect_error("{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"task 1 not found\"}}",
	             "NOT_FOUND: task 1 not found");
	expect_error("{\"code\":\"BAD\",\"message\":\"no\"}", "BAD: no");
	expect_error("{\"code\":409}", "409");
	expect_error("{\"message\":\"only a message\"}", "only a message");
	/* Spring Boot's error document, as keruta-api answers before its controllers */
	expect_error("{\"timestamp\":\"2024-01-01T00:00:00.000+00:00\",\"status\":415,"
	             "\"error\":\"Unsupported Media Type\",\"path\":\"/api/v1/tasks/t1/status\"}",
	             "Unsupported Media Type");
	expect_error("{\"status\":400,\"error\":\"Bad Request\",\"message\":\"\"}", "Bad Request");
	expect_error("{\"status\":400,\"error\":\"Bad Request\",\"message\":\"bad body\"}",
	             "Bad Request: bad body");
	expect_error("{\"error\":[1]}", NULL);
	expect_error("[1,2]", NULL);
	expect_error("<html>502 Bad Gateway</html>", NULL);
	expect_error("{\"error\":{\"code\":\"X\",\"message\":\"line\\nbreak\\u0007bell\"}}",
	             "X: line break bell");
	expect_error("", NULL);
	/* very long messages are cut */
	char body[3000] = "{\"message\":\"";
	memset(body + strlen(body), 'm', 2000);
	strcpy(body + 12 + 2000, "\"}");
	char *got = kr_http_server_error(body, strlen(body));
	cr_assert(got);
	cr_expect_lt(strlen(got), 500);
	free(got);
}

Test(api_unit, retry_after)
{
	cr_expect_eq(kr_http_retry_after_ms("3", 0), 3000);
	cr_expect_eq(kr_http_retry_after_ms(" 0 ", 0), 0);
	cr_expect_eq(kr_http_retry_after_ms("Thu, 01 Jan 1970 00:00:10 GMT", 4), 6000);
	cr_expect_eq(kr_http_retry_after_ms("Thu, 01 Jan 1970 00:00:10 GMT", 100), 0);
	/* a date far ahead is a year at most, not a signed overflow (found
	 * by tests/fuzz/fuzz_numbers) */
	cr_expect_eq(kr_http_retry_after_ms(";1e1111111131Oct", 1700000000), 86400ll * 365 * 1000);
	cr_expect_eq(kr_http_retry_after_ms("soon", 0), -1);
	cr_expect_eq(kr_http_retry_after_ms("5s", 0), -1);
	cr_expect_eq(kr_http_retry_after_ms("99999999999999999999999", 0), -1);
}

static void expect_name(const char *header, const char *want)
{
	char *got = kr_http_disposition_filename(header);
	if (want)
		cr_expect_str_eq(got ? got : "(null)", want, "header %s", header);
	else
		cr_expect_null(got, "header %s gave %s", header, got);
	free(got);
}

Test(api_unit, content_disposition)
{
	expect_name("attachment; filename=\"notes.md\"", "notes.md");
	expect_name("attachment; filename=plain.txt", "plain.txt");
	expect_name("attachment; filename=\"a \\\"q\\\".md\"", "a \"q\".md");
	expect_name("attachment; filename*=UTF-8''%C3%A9t%C3%A9.md; filename=\"ete.md\"",
	            "\xc3\xa9t\xc3\xa9.md");
	expect_name("attachment; filename*=UTF-8''bad%zz; filename=\"fallback.md\"", "fallback.md");
	expect_name("attachment; filename*=UTF-8''nul%00byte", NULL);
	/* a cut escape at the very end: the decoder stepped past the
	 * terminator.  The value fills the 64 bytes the header parser
	 * allocates, so the over-read leaves the block (ASan, valgrind). */
	expect_name("attachment; filename*=UTF-8''"
	            "0123456789012345678901234567890123456789012345678901234%", NULL);
	expect_name("attachment; filename*=UTF-8''"
	            "012345678901234567890123456789012345678901234567890123%4", NULL);
	expect_name("attachment; filename*=UTF-8''cut%", NULL);
	expect_name("attachment; filename*=UTF-8''cut%4", NULL);
	expect_name("attachment; filename*=UTF-8''%", NULL);
	expect_name("attachment; filename*=UTF-8''a%4; filename=\"f.md\"", "f.md");
	/* a second hex digit 0 is no NUL either: a space, a digit zero */
	expect_name("attachment; filename*=UTF-8''a%20b%30.md", "a b0.md");
	/* a first hex digit 0 is not a NUL: only %00 is */
	expect_name("attachment; filename*=UTF-8''tab%09x%0A.md", "tab\tx\n.md");
	expect_name("attachment", NULL);
	expect_name("attachment; filename=\"\"", NULL);
	/* the name is returned unchecked: the document stage vets it */
	expect_name("attachment; filename=\"../../etc/passwd\"", "../../etc/passwd");
}

Test(api_unit, path_escape)
{
	char *e = kr_http_escape("a b/c?d#e%");
	cr_expect_str_eq(e, "a%20b%2Fc%3Fd%23e%25");
	free(e);
	e = kr_http_escape("plain-id_1.2~x");
	cr_expect_str_eq(e, "plain-id_1.2~x");
	free(e);
}
