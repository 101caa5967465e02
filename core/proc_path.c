/*
 * proc_path.c - finding a child's program in the PATH of its environment.
 */
#include "proc_path.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* argv[0] resolved against the child's PATH, as the child would see it. */
char *kr_proc_find_program(const char *name, char **env)
{
	if (strchr(name, '/'))
		return kr_strdup(name);
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (char **e = env; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t)(end - p) : strlen(p);
		char *full = dl ? kr_asprintf("%.*s/%s", (int)dl, p, name) : kr_asprintf("%s", name);
		struct stat st;
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
			return full;
		free(full);
		if (!end)
			return NULL;
		p = end;
	}
}
