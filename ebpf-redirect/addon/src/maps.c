/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pinned map access through bpf(2) (BPF_OBJ_GET, BPF_MAP_*_ELEM; libbpf's bpf.h wrappers are the bare
 * syscalls). Keys and values are raw bytes: their layouts are encoded and decoded in maps.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addon.h"

struct pinned_map {
	int fd;
	struct bpf_map_info info;
	char path[PATH_BYTES];
};

static bool open_map(napi_env env, napi_value path_arg, struct pinned_map *m)
{
	__u32 len = sizeof(m->info);
	char what[PATH_BYTES + 32];

	if (!arg_string(env, path_arg, "pinPath", m->path, sizeof(m->path)))
		return false;
	m->fd = bpf_obj_get(m->path);
	if (m->fd < 0) {
		snprintf(what, sizeof(what), "open pinned map %s", m->path);
		throw_errno(env, "bpf(BPF_OBJ_GET)", what, errno);
		return false;
	}
	memset(&m->info, 0, sizeof(m->info));
	if (bpf_obj_get_info_by_fd(m->fd, &m->info, &len) < 0) {
		snprintf(what, sizeof(what), "inspect pinned object %s", m->path);
		throw_errno(env, "bpf(BPF_OBJ_GET_INFO_BY_FD)", what, errno);
		close(m->fd);
		return false;
	}
	return true;
}

static bool is_percpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/* Bytes a lookup returns: per-CPU maps return one 8-byte-aligned slot per possible CPU. */
static size_t lookup_size(const struct bpf_map_info *info)
{
	if (is_percpu(info->type)) {
		int cpus = libbpf_num_possible_cpus();
		return (size_t)((info->value_size + 7) & ~7u) * (size_t)(cpus > 0 ? cpus : 1);
	}
	return info->value_size;
}

static bool check_size(napi_env env, struct pinned_map *m, const char *name, size_t got, size_t want)
{
	char message[PATH_BYTES + 128];

	if (got == want)
		return true;
	snprintf(message, sizeof(message), "%s for %s must be %zu bytes, got %zu", name, m->path, want, got);
	napi_throw_range_error(env, "ERR_WEFT_MAP_SIZE", message);
	close(m->fd);
	return false;
}

static napi_value syscall_error(napi_env env, struct pinned_map *m, const char *syscall, const char *verb)
{
	char what[PATH_BYTES + 64];
	int err = errno;

	snprintf(what, sizeof(what), "%s %s", verb, m->path);
	close(m->fd);
	throw_errno(env, syscall, what, err);
	return NULL;
}

/* mapUpdate(pinPath, key, value) */
static napi_value map_update(napi_env env, napi_callback_info info)
{
	struct pinned_map m;
	void *key, *value;
	size_t key_len, value_len;

	GET_ARGS(env, info, argc, argv);
	if (!arg_buffer(env, argv[1], "key", &key, &key_len) || !arg_buffer(env, argv[2], "value", &value, &value_len))
		return NULL;
	if (!open_map(env, argv[0], &m))
		return NULL;
	if (!check_size(env, &m, "key", key_len, m.info.key_size) ||
	    !check_size(env, &m, "value", value_len, lookup_size(&m.info)))
		return NULL;
	if (bpf_map_update_elem(m.fd, key, value, BPF_ANY) < 0)
		return syscall_error(env, &m, "bpf(BPF_MAP_UPDATE_ELEM)", "update");
	close(m.fd);
	return NULL;
}

/* mapDelete(pinPath, key) -> true if an entry was removed */
static napi_value map_delete(napi_env env, napi_callback_info info)
{
	struct pinned_map m;
	void *key;
	size_t key_len;

	GET_ARGS(env, info, argc, argv);
	if (!arg_buffer(env, argv[1], "key", &key, &key_len))
		return NULL;
	if (!open_map(env, argv[0], &m))
		return NULL;
	if (!check_size(env, &m, "key", key_len, m.info.key_size))
		return NULL;
	if (bpf_map_delete_elem(m.fd, key) < 0) {
		if (errno == ENOENT) {
			close(m.fd);
			return make_bool(env, false);
		}
		return syscall_error(env, &m, "bpf(BPF_MAP_DELETE_ELEM)", "delete from");
	}
	close(m.fd);
	return make_bool(env, true);
}

/* mapLookup(pinPath, key) -> Buffer | null (per-CPU maps: one 8-byte-aligned slot per possible CPU) */
static napi_value map_lookup(napi_env env, napi_callback_info info)
{
	struct pinned_map m;
	void *key, *out;
	size_t key_len, size;
	napi_value buffer;

	GET_ARGS(env, info, argc, argv);
	if (!arg_buffer(env, argv[1], "key", &key, &key_len))
		return NULL;
	if (!open_map(env, argv[0], &m))
		return NULL;
	if (!check_size(env, &m, "key", key_len, m.info.key_size))
		return NULL;
	size = lookup_size(&m.info);
	if (napi_create_buffer(env, size ? size : 1, &out, &buffer) != napi_ok) {
		close(m.fd);
		return NULL;
	}
	if (bpf_map_lookup_elem(m.fd, key, out) < 0) {
		if (errno == ENOENT) {
			close(m.fd);
			return make_null(env);
		}
		return syscall_error(env, &m, "bpf(BPF_MAP_LOOKUP_ELEM)", "look up in");
	}
	close(m.fd);
	return buffer;
}

/* mapKeys(pinPath) -> Buffer[] (at most max_entries keys) */
static napi_value map_keys(napi_env env, napi_callback_info info)
{
	struct pinned_map m;
	napi_value array;
	unsigned char *prev = NULL, *next;
	uint32_t count = 0;

	GET_ARGS(env, info, argc, argv);
	if (!open_map(env, argv[0], &m))
		return NULL;
	napi_create_array(env, &array);
	next = malloc(m.info.key_size ? m.info.key_size : 1);
	prev = malloc(m.info.key_size ? m.info.key_size : 1);
	if (!next || !prev) {
		free(next);
		free(prev);
		close(m.fd);
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	while (count < m.info.max_entries) {
		napi_value buffer;
		void *data;
		if (bpf_map_get_next_key(m.fd, count ? prev : NULL, next) < 0) {
			if (errno == ENOENT)
				break;
			free(next);
			free(prev);
			return syscall_error(env, &m, "bpf(BPF_MAP_GET_NEXT_KEY)", "iterate");
		}
		napi_create_buffer_copy(env, m.info.key_size, next, &data, &buffer);
		napi_set_element(env, array, count++, buffer);
		memcpy(prev, next, m.info.key_size);
	}
	free(next);
	free(prev);
	close(m.fd);
	return array;
}

/* mapInfo(pinPath) -> { id, type, keySize, valueSize, maxEntries, name } */
static napi_value map_info(napi_env env, napi_callback_info info)
{
	struct pinned_map m;
	napi_value out;

	GET_ARGS(env, info, argc, argv);
	if (!open_map(env, argv[0], &m))
		return NULL;
	napi_create_object(env, &out);
	set_prop(env, out, "id", make_u32(env, m.info.id));
	set_prop(env, out, "type", make_u32(env, m.info.type));
	set_prop(env, out, "keySize", make_u32(env, m.info.key_size));
	set_prop(env, out, "valueSize", make_u32(env, m.info.value_size));
	set_prop(env, out, "maxEntries", make_u32(env, m.info.max_entries));
	set_prop(env, out, "name", make_string(env, m.info.name));
	close(m.fd);
	return out;
}

/* sockmapPut(pinPath, key, fd): the kernel drops the entry by itself when the socket closes. */
static napi_value sockmap_put(napi_env env, napi_callback_info info)
{
	struct pinned_map m;
	uint32_t key;
	int32_t sock_fd;
	__u64 value64;
	__u32 value32;

	GET_ARGS(env, info, argc, argv);
	if (!arg_u32(env, argv[1], "key", &key) || !arg_i32(env, argv[2], "fd", &sock_fd))
		return NULL;
	if (!open_map(env, argv[0], &m))
		return NULL;
	if (m.info.type != BPF_MAP_TYPE_SOCKMAP || (m.info.value_size != 4 && m.info.value_size != 8) ||
	    m.info.key_size != 4) {
		char message[PATH_BYTES + 64];
		snprintf(message, sizeof(message), "%s is not a SOCKMAP with 4-byte keys", m.path);
		close(m.fd);
		napi_throw_type_error(env, "ERR_WEFT_MAP_TYPE", message);
		return NULL;
	}
	value32 = (__u32)sock_fd;
	value64 = (__u64)value32;
	if (bpf_map_update_elem(m.fd, &key, m.info.value_size == 4 ? (void *)&value32 : (void *)&value64, BPF_ANY) < 0)
		return syscall_error(env, &m, "bpf(BPF_MAP_UPDATE_ELEM)", "put a socket into");
	close(m.fd);
	return NULL;
}

napi_value init_maps(napi_env env, napi_value exports)
{
	EXPORT_FN(env, exports, "mapUpdate", map_update);
	EXPORT_FN(env, exports, "mapDelete", map_delete);
	EXPORT_FN(env, exports, "mapLookup", map_lookup);
	EXPORT_FN(env, exports, "mapKeys", map_keys);
	EXPORT_FN(env, exports, "mapInfo", map_info);
	EXPORT_FN(env, exports, "sockmapPut", sockmap_put);
	return exports;
}
