/*
 * api_tls.c - TLS to keruta-api with a CA made by the test: verified with
 * --ca-file, refused without it (no retries, a message naming the fix),
 * and --insecure works but warns.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_util.h"

static at_ctx C;
static char *certs, *ca;

static void setup(void)
{
	certs = kt_tmpdir();
	char *cmd = NULL;
	cr_assert(asprintf(&cmd,
	                   "set -e; cd '%s'; exec >openssl.log 2>&1\n"
	                   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	                   "-keyout ca.key -out ca.crt -days 2 -subj '/CN=keruta test CA' "
	                   "-addext 'basicConstraints=critical,CA:TRUE' "
	                   "-addext 'keyUsage=critical,keyCertSign,cRLSign'\n"
	                   "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	                   "-keyout server.key -out server.csr -subj '/CN=localhost'\n"
	                   "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
	                   "basicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
	                   "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	                   "-out server.crt -days 2 -extfile server.ext\n",
	                   certs) > 0);
	cr_assert(system(cmd) == 0, "openssl failed; see %s/openssl.log", certs);
	free(cmd);
	ca = kt_path(certs, "ca.crt");
	char *crt = kt_path(certs, "server.crt"), *key = kt_path(certs, "server.key");
	/* the control calls (curl(1)) trust the test CA too */
	setenv("CURL_CA_BUNDLE", ca, 1);
	const char *const args[] = {"--tls-cert", crt, "--tls-key", key, NULL};
	at_start(&C, args);
	at_pipeline(&C, "count: 20", NULL);
	free(crt);
	free(key);
}

static void teardown(void)
{
	at_stop(&C);
	kt_rmrf(certs);
	free(certs);
	free(ca);
}

TestSuite(api_tls, .init = setup, .fini = teardown, .timeout = 60);

/* Nothing from the environment may make the agent trust the CA. */
static const char *const clean_env[] = {"CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
                                        "KERUTA_CA_FILE", "KERUTA_INSECURE", NULL};

Test(api_tls, verified_with_ca_file)
{
	const char *const args[] = {"--ca-file", ca, NULL};
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, args, clean_env, 30), 0, "stderr:\n%s", r.err);
	size_t n;
	free(at_lines(&C, &n));
	cr_expect_eq(n, 20);
	cr_expect_eq(at_count(&C, "PUT", "/tasks/t1/status"), 2);
	cr_expect(!kt_contains(r.err, "verification is OFF"));
	kt_result_free(&r);
}

/* Started with stdin closed (a supervisor that gives none), the CA file
 * is the first file the agent keeps open and lands on descriptor 0: it
 * is still a CA file, not a failure. */
Test(api_tls, verified_with_ca_file_on_descriptor_0)
{
	const char *const args[] = {"--ca-file", ca, NULL};
	const char *const *agent = at_agent_argv(&C, args);
	const char *argv[70] = {"/bin/sh", "-c", "exec \"$@\" 0<&-", "sh"};
	int n = 4;
	for (int i = 0; agent[i] && n < 69; i++)
		argv[n++] = agent[i];
	argv[n] = NULL;
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, clean_env, NULL, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_expect(!kt_contains(r.err, "CA file"), "%s", r.err);
	cr_expect_eq(at_count(&C, "PUT", "/tasks/t1/status"), 2);
	kt_result_free(&r);
}

Test(api_tls, refused_without_ca_file)
{
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, clean_env, 30), 3, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "TLS verification failed"), "%s", r.err);
	cr_expect(kt_contains(r.err, "--ca-file"), "%s", r.err);
	cr_expect(!kt_contains(r.err, "retry 1"), "a certificate problem is not retried:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 0, "no request may pass an unverified TLS");
	kt_result_free(&r);
}

Test(api_tls, insecure_works_and_warns)
{
	const char *const args[] = {"--insecure", NULL};
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, args, clean_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "WARN") && kt_contains(r.err, "TLS certificate verification is OFF"),
	          "%s", r.err);
	kt_result_free(&r);
}

Test(api_tls, missing_ca_file_is_a_usage_error)
{
	const char *const args[] = {"--ca-file", "/nonexistent/ca.crt", NULL};
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, args, clean_env, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "CA file /nonexistent/ca.crt"), "%s", r.err);
	kt_result_free(&r);
}
