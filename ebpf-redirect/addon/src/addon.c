/* SPDX-License-Identifier: Apache-2.0 */
/*
 * weft_ebpf: the small native part of ebpf-redirect. Sockets Node cannot make (transparent listeners,
 * marked onward sockets), bpf(2) map access and libbpf load/attach/pin. No policy lives here: every
 * decision is made in TypeScript or in the BPF programs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "addon.h"
#include "weft_capture.h"

void throw_errno(napi_env env, const char *syscall, const char *what, int err)
{
	char message[PATH_BYTES + 256];
	const char *name = strerrorname_np(err);
	napi_value error, code, msg;

	snprintf(message, sizeof(message), "%s: %s", what, strerror(err));
	napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
	napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
	napi_create_error(env, code, msg, &error);
	set_prop(env, error, "errno", make_i32(env, -err));
	set_prop(env, error, "syscall", make_string(env, syscall));
	napi_throw(env, error);
}

void throw_plain(napi_env env, const char *code, const char *message)
{
	napi_throw_error(env, code, message);
}

static void throw_type(napi_env env, const char *name, const char *expected)
{
	char message[256];

	snprintf(message, sizeof(message), "argument %s must be %s", name, expected);
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
}

bool arg_is_absent(napi_env env, napi_value value)
{
	napi_valuetype type;

	napi_typeof(env, value, &type);
	return type == napi_undefined || type == napi_null;
}

bool arg_u32(napi_env env, napi_value value, const char *name, uint32_t *out)
{
	napi_valuetype type;
	double d;

	napi_typeof(env, value, &type);
	if (type != napi_number || napi_get_value_double(env, value, &d) != napi_ok || d < 0 || d > 4294967295.0 ||
	    d != (double)(uint32_t)d) {
		throw_type(env, name, "an integer in [0, 2^32)");
		return false;
	}
	*out = (uint32_t)d;
	return true;
}

bool arg_i32(napi_env env, napi_value value, const char *name, int32_t *out)
{
	napi_valuetype type;
	double d;

	napi_typeof(env, value, &type);
	if (type != napi_number || napi_get_value_double(env, value, &d) != napi_ok || d < -2147483648.0 ||
	    d > 2147483647.0 || d != (double)(int32_t)d) {
		throw_type(env, name, "a 32-bit integer");
		return false;
	}
	*out = (int32_t)d;
	return true;
}

bool arg_string(napi_env env, napi_value value, const char *name, char *buf, size_t size)
{
	napi_valuetype type;
	size_t len = 0;

	napi_typeof(env, value, &type);
	if (type != napi_string) {
		throw_type(env, name, "a string");
		return false;
	}
	napi_get_value_string_utf8(env, value, NULL, 0, &len);
	if (len + 1 > size) {
		throw_type(env, name, "a shorter string");
		return false;
	}
	napi_get_value_string_utf8(env, value, buf, size, &len);
	return true;
}

bool arg_buffer(napi_env env, napi_value value, const char *name, void **data, size_t *len)
{
	bool is_buffer = false;

	napi_is_buffer(env, value, &is_buffer);
	if (!is_buffer) {
		throw_type(env, name, "a Buffer");
		return false;
	}
	napi_get_buffer_info(env, value, data, len);
	return true;
}

napi_value make_u32(napi_env env, uint32_t v)
{
	napi_value out;

	napi_create_uint32(env, v, &out);
	return out;
}

napi_value make_i32(napi_env env, int32_t v)
{
	napi_value out;

	napi_create_int32(env, v, &out);
	return out;
}

napi_value make_bool(napi_env env, bool v)
{
	napi_value out;

	napi_get_boolean(env, v, &out);
	return out;
}

napi_value make_string(napi_env env, const char *s)
{
	napi_value out;

	napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
	return out;
}

napi_value make_null(napi_env env)
{
	napi_value out;

	napi_get_null(env, &out);
	return out;
}

void set_prop(napi_env env, napi_value obj, const char *name, napi_value value)
{
	napi_set_named_property(env, obj, name, value);
}

/* The tail of libbpf's output (the verifier log of a failed load can be long; the end says why). */
static char log_buf[8192];
static size_t log_len;

void libbpf_log_reset(void)
{
	log_len = 0;
	log_buf[0] = '\0';
}

const char *libbpf_log_text(void)
{
	return log_buf;
}

static int libbpf_print(enum libbpf_print_level level, const char *format, va_list args)
{
	char line[1024];
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	n = vsnprintf(line, sizeof(line), format, args);
	if (n <= 0)
		return 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (log_len + (size_t)n >= sizeof(log_buf)) {
		/* keep the newest half */
		size_t keep = sizeof(log_buf) / 2;
		if (log_len > keep) {
			memmove(log_buf, log_buf + log_len - keep, keep);
			log_len = keep;
		}
		if (log_len + (size_t)n >= sizeof(log_buf))
			n = (int)(sizeof(log_buf) - log_len - 1);
	}
	memcpy(log_buf + log_len, line, (size_t)n);
	log_len += (size_t)n;
	log_buf[log_len] = '\0';
	return 0;
}

static napi_value constants(napi_env env)
{
	napi_value c;

	napi_create_object(env, &c);
	set_prop(env, c, "layoutVersion", make_u32(env, WEFT_LAYOUT_VERSION));
	set_prop(env, c, "markSteer", make_u32(env, WEFT_MARK_STEER));
	set_prop(env, c, "markOnward", make_u32(env, WEFT_MARK_ONWARD));
	set_prop(env, c, "markMask", make_u32(env, WEFT_MARK_MASK));
	set_prop(env, c, "routeTable", make_u32(env, WEFT_ROUTE_TABLE));
	set_prop(env, c, "rulePref", make_u32(env, WEFT_RULE_PREF));
	set_prop(env, c, "tcHandle", make_u32(env, WEFT_TC_HANDLE));
	set_prop(env, c, "tcPriority", make_u32(env, WEFT_TC_PRIORITY));
	set_prop(env, c, "configSize", make_u32(env, sizeof(struct weft_config)));
	set_prop(env, c, "statCount", make_u32(env, WEFT_STAT_MAX));
	return c;
}

static napi_value init(napi_env env, napi_value exports)
{
	libbpf_set_print(libbpf_print);
	set_prop(env, exports, "constants", constants(env));
	init_sockets(env, exports);
	init_maps(env, exports);
	init_loader(env, exports);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
