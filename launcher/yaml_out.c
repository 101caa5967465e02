/*
 * yaml_out.c - a YAML writer for json-c objects that double-quotes every
 * string, so no text of a task is ever read as YAML syntax (see
 * yaml_out.h).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "utf8.h"
#include "yaml_out.h"

static void indent(kr_buf *b, int n)
{
	for (int i = 0; i < n; i++)
		kr_buf_addc(b, ' ');
}

/* Always double-quoted: no YAML reading of user text (null, yes, *x,
 * "- ", "#") can ever apply. */
static void yaml_string(kr_buf *b, const char *s, size_t len)
{
	kr_buf_addc(b, '"');
	for (size_t i = 0; i < len;) {
		unsigned cp;
		size_t n = kr_utf8_seq((const unsigned char *)s + i, len - i, &cp);
		if (!n) {
			kr_buf_adds(b, "\\uFFFD");
			i++;
			continue;
		}
		switch (cp) {
		case '"': kr_buf_adds(b, "\\\""); break;
		case '\\': kr_buf_adds(b, "\\\\"); break;
		case '\n': kr_buf_adds(b, "\\n"); break;
		case '\t': kr_buf_adds(b, "\\t"); break;
		case '\r': kr_buf_adds(b, "\\r"); break;
		default:
			if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0x2028 ||
			    cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
				kr_buf_addf(b, "\\u%04X", cp);
			else
				kr_buf_add(b, s + i, n);
		}
		i += n;
	}
	kr_buf_addc(b, '"');
}

static void yaml_key(kr_buf *b, const char *k)
{
	static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false",
	                                    "null", "~", ""};
	int plain = isalpha((unsigned char)k[0]);
	for (const char *p = k; plain && *p; p++)
		plain = isalnum((unsigned char)*p) || strchr("-_./", *p);
	for (size_t i = 0; plain && i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(k, words[i]) == 0)
			plain = 0;
	if (plain)
		kr_buf_adds(b, k);
	else
		yaml_string(b, k, strlen(k));
}

static int is_scalar(json_object *v)
{
	return !json_object_is_type(v, json_type_object) &&
	       !json_object_is_type(v, json_type_array);
}

static void yaml_scalar(kr_buf *b, json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: kr_buf_adds(b, "null"); break;
	case json_type_boolean: kr_buf_adds(b, json_object_get_boolean(v) ? "true" : "false"); break;
	case json_type_int: kr_buf_addf(b, "%lld", (long long)json_object_get_int64(v)); break;
	case json_type_double: kr_buf_addf(b, "%.17g", json_object_get_double(v)); break;
	default: yaml_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
	}
}

static int is_empty(json_object *v)
{
	if (json_object_is_type(v, json_type_object))
		return json_object_object_length(v) == 0;
	if (json_object_is_type(v, json_type_array))
		return json_object_array_length(v) == 0;
	return 0;
}

static void emit_seq(kr_buf *b, json_object *a, int ind);

/* first_inline: the first key goes right after a "- ". */
static void emit_map(kr_buf *b, json_object *o, int ind, int first_inline)
{
	int first = 1;
	json_object_object_foreach(o, k, v)
	{
		if (!(first && first_inline))
			indent(b, ind);
		first = 0;
		yaml_key(b, k);
		kr_buf_addc(b, ':');
		if (is_scalar(v)) {
			kr_buf_addc(b, ' ');
			yaml_scalar(b, v);
			kr_buf_addc(b, '\n');
		} else if (is_empty(v)) {
			kr_buf_adds(b, json_object_is_type(v, json_type_object) ? " {}\n" : " []\n");
		} else if (json_object_is_type(v, json_type_object)) {
			kr_buf_addc(b, '\n');
			emit_map(b, v, ind + 2, 0);
		} else {
			kr_buf_addc(b, '\n');
			emit_seq(b, v, ind + 2);
		}
	}
}

static void emit_seq(kr_buf *b, json_object *a, int ind)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *v = json_object_array_get_idx(a, i);
		indent(b, ind);
		kr_buf_adds(b, "- ");
		if (is_scalar(v)) {
			yaml_scalar(b, v);
			kr_buf_addc(b, '\n');
		} else if (is_empty(v)) {
			kr_buf_adds(b, json_object_is_type(v, json_type_object) ? "{}\n" : "[]\n");
		} else if (json_object_is_type(v, json_type_object)) {
			emit_map(b, v, ind + 2, 1);
		} else {
			kr_buf_addc(b, '\n');
			emit_seq(b, v, ind + 2);
		}
	}
}

void kr_yaml_emit(json_object *o, int separator, kr_buf *out)
{
	if (separator)
		kr_buf_adds(out, "---\n");
	emit_map(out, o, 0, 0);
}
