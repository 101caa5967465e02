/*
 * settings_check.h - the launcher's settings, checked before anything is
 * rendered or started, and the two readings manifests share with the
 * check.
 */
#ifndef KR_LAUNCHER_SETTINGS_CHECK_H
#define KR_LAUNCHER_SETTINGS_CHECK_H

#include <json.h>

#include "settings.h"
#include "util.h"

/* Check the launcher's settings (volume kind, quantities, selectors...). */
int kr_render_check(const kr_settings *s, kr_error *err);

/* A launcher value that asks for something: given, and not "none". */
int kr_launcher_given(const char *v);

/* A toleration "key[=value][:Effect]" as in kubectl taint: 0 and, when
 * out is not NULL, the object (the caller's), or -1 when malformed. */
int kr_k8s_toleration(const char *t, json_object **out);

#endif
