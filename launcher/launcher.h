/*
 * launcher.h - the launcher's two commands, which its entry point
 * (launcher.c, the descriptor kr_launcher_module of core/module.h) runs.
 */
#ifndef KR_LAUNCHER_H
#define KR_LAUNCHER_H

#include "settings.h"
#include "util.h"

/* Print one task's Kubernetes objects; the exit code. */
int kr_render(kr_settings *s, kr_error *err);
/* Follow the PENDING tasks until a signal (or --once); the exit code. */
int kr_dispatch(kr_settings *s, kr_error *err);

#endif
