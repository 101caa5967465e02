/*
 * proc_path.h - PATH lookup for a child's program (proc_path.c).
 */
#ifndef KR_PROC_PATH_H
#define KR_PROC_PATH_H

/* name (argv[0]) as a path: itself when it has a '/', else the first
 * executable regular file of that name in env's PATH (a default PATH when
 * env has none); malloc'd, or NULL when there is none. */
char *kr_proc_find_program(const char *name, char **env);

#endif
