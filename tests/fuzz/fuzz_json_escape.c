/* fuzz_json_escape - every byte string escaped into a JSON string (log
 * lines, status messages, events.jsonl) parses with json-c, to a string
 * equal to the input when the input is ASCII without NUL. */
#include <json.h>
#include <stdlib.h>

#include "fuzz.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kr_buf b = {0};
	kr_buf_addc(&b, '"');
	kr_buf_add_json_str(&b, (const char *)data, size);
	kr_buf_addc(&b, '"');
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, b.data, (int)b.len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != b.len || !json_object_is_type(o, json_type_string))
		abort();
	int ascii = 1;
	for (size_t i = 0; i < size; i++)
		if (data[i] == 0 || data[i] >= 0x80)
			ascii = 0;
	if (ascii && ((size_t)json_object_get_string_len(o) != size ||
	              memcmp(json_object_get_string(o), data, size) != 0))
		abort();
	json_object_put(o);
	json_tokener_free(tok);
	kr_buf_free(&b);
	return 0;
}
