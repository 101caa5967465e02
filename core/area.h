/*
 * area.h - the agent's own area in the work dir, WORK_DIR/.keruta.
 *
 * The work dir holds a checkout of someone else's repository, so nothing
 * found under .keruta is trusted: the area is opened with O_NOFOLLOW and
 * every name below it is reached from a directory descriptor (openat,
 * mkdirat, renameat, unlinkat), one component at a time, never by a path
 * the kernel would resolve through a symlink.  When the agent makes a
 * directory or writes a file there, whatever stands in its place (a
 * symlink, a file where a directory belongs) is removed first.  A
 * `.keruta` that is itself a symlink or a file is refused, never removed:
 * that is the work dir's business, not the agent's.
 *
 * Each task owns .keruta/tasks/<task id>/ (doc/, documents/, env/, its
 * scripts, the upload record, the outcome record, the log spool): tasks sharing a volume (a
 * child task on its parent's claim) never see each other's files by
 * accident.  .keruta/doc and .keruta/documents, the names task scripts
 * use, are symlinks the agent points at the running task's own
 * directories before it starts task code; the parent's stay readable
 * under .keruta/tasks/<parent id>/.  A real directory found at one of
 * those names (left by an older agent, or made by hand) is moved to
 * .keruta/unowned/, never uploaded as anyone's.
 *
 * Every function here is the one place this is done: stages reach it
 * through kr_services.area_open/area_path, backends call it directly.
 */
#ifndef KR_AREA_H
#define KR_AREA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define KR_AREA_DIR ".keruta"
#define KR_AREA_TASKS "tasks"
/* The area of a process that knows no task id (the seeds' init
 * container); the first process with an id on the volume adopts it. */
#define KR_AREA_NO_ID ".no-task-id"

/* Flags of kr_area_task_open; the same values as KR_AREA_* in plugin.h. */
#define KR_AREA_F_CREATE 0x1u
#define KR_AREA_F_SHOW   0x2u

/* Open the directory `rel` ("" or NULL: base itself) below base, one
 * component at a time, never following a symlink.  With create, a missing
 * component is made (mode 0755) and anything in its place that is not a
 * directory is removed first.  -1 with errno set (ELOOP or ENOTDIR for a
 * symlink or file in the way when not creating, EINVAL for "..").  The
 * descriptor is the caller's. */
int kr_area_openat(int base, const char *rel, int create);

/* WORK_DIR/.keruta/rel.  A `.keruta` symlink or file: -1, errno ENOTDIR. */
int kr_area_open(const char *work, const char *rel, int create);

/* Whether id may name a directory: kr_id_check's rule, the one rule for
 * ids. */
int kr_area_id_ok(const char *id);

/* The task's own directory WORK_DIR/.keruta/tasks/<task_id>/rel (flags
 * KR_AREA_F_*).  With KR_AREA_F_SHOW, .keruta/doc and .keruta/documents
 * are pointed at the task's own doc/ and documents/ (made if missing).
 * -1 with err filled (errno also set, ENOENT when it does not exist and
 * was not to be created). */
int kr_area_task_open(const char *work, const char *task_id, const char *rel, unsigned flags,
                      kr_error *err);

/* Make the directory `path` like kr_mkdirs, except that below its
 * "/.keruta" component every directory is made with kr_area_openat (no
 * symlink followed, anything in the way removed).  0 or -1 with errno. */
int kr_area_mkdirs(const char *path);

/* Open `name` in dir for writing (O_WRONLY | extra, O_NOFOLLOW), removing
 * a symlink or anything else but a regular file in its place first. */
int kr_area_create_file(int dir, const char *name, int extra, mode_t mode);

#endif
