/*
 * proc_oom.c - reading the OOM killer's counter of the agent's cgroup, so
 * a child killed by it is told from one killed by anything else.
 */
#include "proc_oom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int64_t oom_count_in(const char *path)
{
	/* cgroupfs files are regular (size 0); KERUTA_CGROUP_MEMORY_EVENTS may
	 * name anything, and a FIFO there must not stop the agent */
	kr_error err = {0};
	char *text = kr_read_file(path, 1u << 16, NULL, KR_EXIT_INTERNAL, NULL, &err);
	if (!text)
		return -1;
	int64_t v = -1;
	for (char *rest = text, *line; (line = strsep(&rest, "\n"));) {
		if (strncmp(line, "oom_kill ", 9) == 0) {
			char *end;
			long long x = strtoll(line + 9, &end, 10);
			if (end != line + 9 && x >= 0)
				v = x;
			break;
		}
	}
	free(text);
	return v;
}

int64_t kr_proc_oom_kills(void)
{
	const char *over = getenv("KERUTA_CGROUP_MEMORY_EVENTS");
	if (over && *over)
		return oom_count_in(over);
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char line[4096];
	int64_t v = -1;
	while (v < 0 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || strstr(c2 + 1, ".."))
			continue;
		*c2 = '\0';
		const char *ctl = c1 + 1, *path = c2 + 1;
		char file[4200];
		if (strcmp(line, "0") == 0 && *ctl == '\0') { /* cgroup v2 */
			snprintf(file, sizeof(file), "/sys/fs/cgroup%s/memory.events",
			         strcmp(path, "/") == 0 ? "" : path);
			v = oom_count_in(file);
		} else if (strstr(ctl, "memory")) { /* v1: oom_control has the counter since 4.13 */
			snprintf(file, sizeof(file), "/sys/fs/cgroup/memory%s/memory.oom_control",
			         strcmp(path, "/") == 0 ? "" : path);
			v = oom_count_in(file);
		}
	}
	fclose(f);
	return v;
}
