/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the weft_ebpf addon: argument reading and error throwing for N-API (C). */
#ifndef WEFT_ADDON_H
#define WEFT_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ARGS 4
#define PATH_BYTES 4096

/* Throws an Error whose message is "<what>: <strerror> " with .code = "E…", .errno, .syscall. */
void throw_errno(napi_env env, const char *syscall, const char *what, int err);
/* Throws an Error with a message and a code of our own (e.g. "ERR_WEFT_LAYOUT"). */
void throw_plain(napi_env env, const char *code, const char *message);

/* Argument readers: return false with a pending TypeError when the argument is missing or mistyped. */
bool arg_u32(napi_env env, napi_value value, const char *name, uint32_t *out);
bool arg_i32(napi_env env, napi_value value, const char *name, int32_t *out);
bool arg_string(napi_env env, napi_value value, const char *name, char *buf, size_t size);
bool arg_buffer(napi_env env, napi_value value, const char *name, void **data, size_t *len);
bool arg_is_absent(napi_env env, napi_value value);

napi_value make_u32(napi_env env, uint32_t v);
napi_value make_i32(napi_env env, int32_t v);
napi_value make_bool(napi_env env, bool v);
napi_value make_string(napi_env env, const char *s);
napi_value make_null(napi_env env);
void set_prop(napi_env env, napi_value obj, const char *name, napi_value value);

/* libbpf's messages since the last reset, so a failed load can say what the verifier said. */
void libbpf_log_reset(void);
const char *libbpf_log_text(void);

napi_value init_sockets(napi_env env, napi_value exports);
napi_value init_maps(napi_env env, napi_value exports);
napi_value init_loader(napi_env env, napi_value exports);

#define EXPORT_FN(env, exports, name, fn)                                                              \
	do {                                                                                           \
		napi_value f_;                                                                         \
		napi_create_function((env), (name), NAPI_AUTO_LENGTH, (fn), NULL, &f_);                \
		napi_set_named_property((env), (exports), (name), f_);                                 \
	} while (0)

#define GET_ARGS(env, info, argc_out, argv_out)                                                        \
	size_t argc_out = MAX_ARGS;                                                                    \
	napi_value argv_out[MAX_ARGS];                                                                 \
	napi_get_cb_info((env), (info), &argc_out, argv_out, NULL, NULL);                              \
	for (size_t i_ = argc_out; i_ < MAX_ARGS; i_++)                                                \
		napi_get_undefined((env), &argv_out[i_]);

#endif
