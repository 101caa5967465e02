/*
 * pipeline.h - the pipeline file: which stages each command runs, in which
 * order, with which plugin and settings.  Strict: every unknown key, wrong
 * type, unknown phase or undefined stage is an error naming the file, line
 * and column.  See keruta-agent-pipeline(5).
 *
 *   version: 1
 *   plugin_path: [/opt/stages]
 *   settings: { work_dir: /work, log_level: info }
 *   phases:
 *     execute: [clone, execute, cleanup]
 *   stages:
 *     clone:   { plugin: clone, with: { depth: 1 } }
 *     execute: { plugin: execute, timeout: 2h }
 *     cleanup: { plugin: cleanup, when: always }
 */
#ifndef KR_PIPELINE_H
#define KR_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "util.h"

typedef enum kr_when { KR_WHEN_ON_SUCCESS, KR_WHEN_ON_FAILURE, KR_WHEN_ALWAYS } kr_when;

typedef struct kr_stage_def {
	const char *name;      /* the stage's name (points into the tree)     */
	const char *plugin;    /* plugin name or path; defaults to the name   */
	const kr_node *with;   /* the `with:` mapping, or NULL                */
	const kr_node *node;   /* the stage's own mapping, for positions      */
	const kr_node *plugin_node; /* where the plugin was named             */
	kr_when when;
	uint64_t timeout_ms;   /* 0: none                                     */
} kr_stage_def;

typedef struct kr_phase {
	const char *name;
	size_t n;
	kr_stage_def **stages; /* owned array; entries point into defs      */
	const kr_node **refs;  /* owned array: where each entry was listed   */
} kr_phase;

/* The commands that run stages, in the order `phases:` documents them. */
#define KR_PHASE_COUNT 4
extern const char *const kr_phase_names[KR_PHASE_COUNT];

typedef struct kr_pipeline {
	char *path;                /* owned                                   */
	kr_node *root;             /* owned; names above point into it        */
	int version;
	size_t n_plugin_path;
	const char **plugin_path;  /* owned array of pointers into the tree   */
	const kr_node *settings;   /* `settings:` mapping, or NULL            */
	size_t n_stages;
	kr_stage_def *stage_defs;  /* owned                                   */
	kr_phase phases[KR_PHASE_COUNT];
} kr_pipeline;

kr_pipeline *kr_pipeline_load(const char *path, kr_error *err);
kr_pipeline *kr_pipeline_parse(const char *name, const char *text, size_t len, kr_error *err);
void kr_pipeline_free(kr_pipeline *p);
/* The phase for a command name, or NULL if there is no such phase. */
const kr_phase *kr_pipeline_phase(const kr_pipeline *p, const char *name);

#endif
