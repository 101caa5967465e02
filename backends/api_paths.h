/*
 * api_paths.h - keruta-api endpoint path templates: the defaults of the
 * design (the seeds' paths), overridable by the pipeline's
 * `settings: api_paths:`.  Shared by the api backend and the launcher, so
 * both talk to the same endpoints.
 */
#ifndef KR_API_PATHS_H
#define KR_API_PATHS_H

#include <string.h>

#include "settings.h"

static inline const char *kr_api_path_template(const kr_settings *s, const char *key)
{
	static const struct {
		const char *key, *def;
	} defaults[] = {
	        {"task", "/api/v1/tasks/{taskId}"},
	        {"script", "/api/v1/tasks/{taskId}/script"},
	        {"repository", "/api/v1/repositories/{repositoryId}"},
	        {"status", "/api/v1/tasks/{taskId}/status"},
	        {"logs", "/api/v1/tasks/{taskId}/logs"},
	        {"install_script", "/api/v1/repositories/{repositoryId}/script"},
	        {"document", "/api/v1/documents/{documentId}/content"},
	        {"artifact", "/api/tasks/{taskId}/documents"},
	        {"pending", "/api/v1/tasks?status=PENDING"},
	};
	const char *v = kr_settings_map_get(s, KR_S_API_PATHS, key);
	if (v && *v)
		return v;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (strcmp(defaults[i].key, key) == 0)
			return defaults[i].def;
	return "";
}

#endif
