/* log.c - see log.h. */
#include "log.h"

#include <pthread.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "secret.h"
#include "util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static kr_log_level min_level = KR_LOG_INFO;
static int json_format;
static int log_fd = 2;
static kr_log_sink sink;
static void *sink_ctx;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void kr_log_setup(kr_log_format format, kr_log_level level, int fd)
{
	pthread_mutex_lock(&lock);
	log_fd = fd;
	min_level = level;
	json_format = format == KR_LOG_FORMAT_JSON ||
	              (format == KR_LOG_FORMAT_AUTO && !isatty(fd));
	pthread_mutex_unlock(&lock);
}

void kr_log_set_sink(kr_log_sink s, void *ctx)
{
	pthread_mutex_lock(&lock);
	sink = s;
	sink_ctx = ctx;
	pthread_mutex_unlock(&lock);
}

int kr_log_is_json(void)
{
	return json_format;
}

kr_log_level kr_log_get_level(void)
{
	return min_level;
}

int kr_log_parse_level(const char *s, kr_log_level *out)
{
	static const char *const lower[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, lower[i]) == 0) {
			*out = (kr_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = KR_LOG_WARN;
		return 0;
	}
	return -1;
}

int kr_log_parse_format(const char *s, kr_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = KR_LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = KR_LOG_FORMAT_JSON;
	else if (strcmp(s, "auto") == 0)
		*out = KR_LOG_FORMAT_AUTO;
	else
		return -1;
	return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return; /* nowhere left to report a failing log */
		p += w;
		n -= (size_t)w;
	}
}

void kr_logv(kr_log_level level, const char *stage, const char *fmt, va_list ap)
{
	if (level < min_level)
		return;
	kr_buf msg = {0}, line = {0};
	char *raw = kr_vasprintf(fmt, ap);
	kr_secret_mask(raw, strlen(raw), &msg);
	free(raw);

	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[64];
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (long)(tv.tv_usec / 1000));

	pthread_mutex_lock(&lock);
	if (json_format) {
		kr_buf_addf(&line, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
		if (stage) {
			kr_buf_adds(&line, ",\"stage\":\"");
			kr_buf_add_json_str(&line, stage, strlen(stage));
			kr_buf_addc(&line, '"');
		}
		kr_buf_adds(&line, ",\"msg\":\"");
		kr_buf_add_json_str(&line, msg.data ? msg.data : "", msg.len);
		kr_buf_adds(&line, "\"}\n");
	} else {
		kr_buf_addf(&line, "%s %-5s ", ts, level_names[level]);
		if (stage)
			kr_buf_addf(&line, "[%s] ", stage);
		kr_buf_add(&line, msg.data ? msg.data : "", msg.len);
		kr_buf_addc(&line, '\n');
	}
	write_all(log_fd, line.data, line.len);
	kr_log_sink s = sink;
	void *ctx = sink_ctx;
	pthread_mutex_unlock(&lock);
	if (s)
		s(ctx, level, stage, msg.data ? msg.data : "");
	kr_buf_free(&msg);
	kr_buf_free(&line);
}

void kr_log(kr_log_level level, const char *stage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kr_logv(level, stage, fmt, ap);
	va_end(ap);
}
