/*
 * yaml_out.h - YAML from json-c objects with every string quoted, so
 * `keruta-agent render | kubectl apply -f -` works whatever the task's id
 * and text hold.
 */
#ifndef KR_LAUNCHER_YAML_OUT_H
#define KR_LAUNCHER_YAML_OUT_H

#include <json.h>

#include "util.h"

/* Append one YAML document ("---" first when `separator`). */
void kr_yaml_emit(json_object *o, int separator, kr_buf *out);

#endif
