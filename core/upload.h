/*
 * upload.h - each artifact of a task uploaded exactly once (upload.c).
 */
#ifndef KR_UPLOAD_H
#define KR_UPLOAD_H

#include "backend.h"

/* Upload the file at path as the task's artifact `name` through b, unless
 * the task's upload record shows the same name, size and sha256 already
 * confirmed: KR_OK (uploaded and recorded), KR_SKIPPED (already there),
 * KR_FAILED (err filled; nothing recorded, so a retry sends it). */
int kr_upload_once(kr_backend *b, kr_task *t, const char *path, const char *name,
                   kr_error *err);

#endif
