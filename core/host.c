/* host.c - the table of core functions the modules call; see host.h. */
#include "host.h"

#include "area.h"
#include "secret.h"
#include "supervise.h"

static const kr_host host = {
        .abi = KR_HOST_ABI,
        .size = sizeof(kr_host),
        .error_vset = kr_error_vset,
        .error_clear = kr_error_clear,
        .error_vwrap = kr_error_vwrap,
        .malloc = kr_malloc,
        .calloc = kr_calloc,
        .realloc = kr_realloc,
        .strdup = kr_strdup,
        .strndup = kr_strndup,
        .vasprintf = kr_vasprintf,
        .buf_add = kr_buf_add,
        .buf_adds = kr_buf_adds,
        .buf_vaddf = kr_buf_vaddf,
        .buf_addc = kr_buf_addc,
        .buf_add_json_str = kr_buf_add_json_str,
        .buf_reset = kr_buf_reset,
        .buf_free = kr_buf_free,
        .open_regular = kr_open_regular,
        .read_value_file = kr_read_value_file,
        .read_file = kr_read_file,
        .id_check = kr_id_check,
        .token_check = kr_token_check,
        .now_ms = kr_now_ms,
        .log_get_level = kr_log_get_level,
        .logv = kr_logv,
        .secret_add = kr_secret_add,
        .secret_add_url_password = kr_secret_add_url_password,
        .secret_mask = kr_secret_mask,
        .supervise_signal = kr_supervise_signal,
        .area_id_ok = kr_area_id_ok,
        .area_mkdirs = kr_area_mkdirs,
        .node_load_file = kr_node_load_file,
        .node_load_string = kr_node_load_string,
        .node_free = kr_node_free,
        .node_get = kr_node_get,
        .node_is_null = kr_node_is_null,
        .settings_status_name = kr_settings_status_name,
        .settings_get = kr_settings_get,
        .settings_api_token = kr_settings_api_token,
        .settings_bool = kr_settings_bool,
        .settings_u64 = kr_settings_u64,
        .settings_list_count = kr_settings_list_count,
        .settings_list_item = kr_settings_list_item,
        .settings_map_get = kr_settings_map_get,
        .task_new = kr_task_new,
        .task_free = kr_task_free,
        .task_get = kr_task_get,
        .task_set = kr_task_set,
        .task_is_field = kr_task_is_field,
        .task_list_count = kr_task_list_count,
        .task_list_item = kr_task_list_item,
        .task_list_add = kr_task_list_add,
        .task_fill_from_node = kr_task_fill_from_node,
        .task_fill_repository = kr_task_fill_repository,
        .taskfile_load = kr_taskfile_load,
};

const kr_host *kr_host_get(void)
{
	return &host;
}
