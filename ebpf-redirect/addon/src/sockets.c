/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sockets Node's net module cannot make: an IP_TRANSPARENT listener (accepts connections for addresses
 * that are not the node's, so localAddress is the original destination), a SO_REUSEPORT listener (Node
 * 20 has no reusePort option; both kinds set it, for restarts), and an unconnected onward
 * socket with SO_MARK, optionally bound transparently to the original client's address. Both return a
 * plain fd for net.Server#listen({ fd }) / new net.Socket({ fd }).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static bool parse_ipv4(napi_env env, napi_value value, const char *name, struct sockaddr_in *sa, uint16_t port)
{
	char text[64];

	if (!arg_string(env, value, name, text, sizeof(text)))
		return false;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	if (inet_pton(AF_INET, text, &sa->sin_addr) != 1) {
		char message[128];
		snprintf(message, sizeof(message), "argument %s must be an IPv4 address, got \"%s\"", name, text);
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", message);
		return false;
	}
	return true;
}

static int fail(napi_env env, int fd, const char *syscall, const char *what)
{
	int err = errno;

	if (fd >= 0)
		close(fd);
	throw_errno(env, syscall, what, err);
	return -1;
}

/*
 * A listening socket on host:port with SO_REUSEADDR and SO_REUSEPORT: a new process binds the same
 * address while the one it replaces still serves, which is what lets an agent or waypoint restart
 * without a moment where nothing listens. With `transparent`, also IP_TRANSPARENT.
 */
static napi_value listen_on(napi_env env, napi_callback_info info, bool transparent)
{
	struct sockaddr_in sa;
	uint32_t port, backlog;
	int fd, one = 1;
	char what[128];

	GET_ARGS(env, info, argc, argv);
	if (!arg_u32(env, argv[1], "port", &port) || !arg_u32(env, argv[2], "backlog", &backlog))
		return NULL;
	if (port > 65535) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "port must be in [0, 65535]");
		return NULL;
	}
	if (!parse_ipv4(env, argv[0], "host", &sa, (uint16_t)port))
		return NULL;
	snprintf(what, sizeof(what), "%s listener %s:%u", transparent ? "transparent" : "shared",
		 inet_ntoa(sa.sin_addr), port);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(env, fd, "socket", what), NULL;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return fail(env, fd, "setsockopt(SO_REUSEADDR)", what), NULL;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		return fail(env, fd, "setsockopt(SO_REUSEPORT)", what), NULL;
	if (transparent && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
		return fail(env, fd, "setsockopt(IP_TRANSPARENT)", what), NULL;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail(env, fd, "bind", what), NULL;
	if (listen(fd, (int)(backlog > 65535 ? 65535 : backlog)) < 0)
		return fail(env, fd, "listen", what), NULL;
	return make_i32(env, fd);
}

/* listenTransparent(host, port, backlog) -> fd */
static napi_value listen_transparent(napi_env env, napi_callback_info info)
{
	return listen_on(env, info, true);
}

/* listenShared(host, port, backlog) -> fd */
static napi_value listen_shared(napi_env env, napi_callback_info info)
{
	return listen_on(env, info, false);
}

/* socketWithMark(mark, sourceIp?) -> fd (unconnected) */
static napi_value socket_with_mark(napi_env env, napi_callback_info info)
{
	struct sockaddr_in sa;
	uint32_t mark;
	int fd, one = 1;
	bool transparent;
	char what[128];

	GET_ARGS(env, info, argc, argv);
	if (!arg_u32(env, argv[0], "mark", &mark))
		return NULL;
	transparent = !arg_is_absent(env, argv[1]);
	if (transparent && !parse_ipv4(env, argv[1], "sourceIp", &sa, 0))
		return NULL;
	if (transparent)
		snprintf(what, sizeof(what), "onward socket (mark 0x%x, source %s)", mark, inet_ntoa(sa.sin_addr));
	else
		snprintf(what, sizeof(what), "onward socket (mark 0x%x)", mark);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(env, fd, "socket", what), NULL;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		return fail(env, fd, "setsockopt(SO_MARK)", what), NULL;
	if (transparent) {
		if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
			return fail(env, fd, "setsockopt(IP_TRANSPARENT)", what), NULL;
		/* Let connect() pick the port knowing the 4-tuple (avoids EADDRNOTAVAIL against TIME_WAITs). */
		if (setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0)
			return fail(env, fd, "setsockopt(IP_BIND_ADDRESS_NO_PORT)", what), NULL;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return fail(env, fd, "bind", what), NULL;
	}
	return make_i32(env, fd);
}

/* closeFd(fd): for fds never handed to Node (error paths). */
static napi_value close_fd(napi_env env, napi_callback_info info)
{
	int32_t fd;

	GET_ARGS(env, info, argc, argv);
	if (!arg_i32(env, argv[0], "fd", &fd))
		return NULL;
	if (close(fd) < 0) {
		throw_errno(env, "close", "close", errno);
		return NULL;
	}
	return NULL;
}

/* ifNameToIndex(name) -> ifindex in the calling process's network namespace */
static napi_value if_name_to_index(napi_env env, napi_callback_info info)
{
	char name[IF_NAMESIZE + 1];
	unsigned int index;

	GET_ARGS(env, info, argc, argv);
	if (!arg_string(env, argv[0], "name", name, sizeof(name)))
		return NULL;
	index = if_nametoindex(name);
	if (index == 0) {
		char what[64];
		snprintf(what, sizeof(what), "interface %s", name);
		throw_errno(env, "if_nametoindex", what, errno);
		return NULL;
	}
	return make_u32(env, index);
}

napi_value init_sockets(napi_env env, napi_value exports)
{
	EXPORT_FN(env, exports, "listenTransparent", listen_transparent);
	EXPORT_FN(env, exports, "listenShared", listen_shared);
	EXPORT_FN(env, exports, "socketWithMark", socket_with_mark);
	EXPORT_FN(env, exports, "closeFd", close_fd);
	EXPORT_FN(env, exports, "ifNameToIndex", if_name_to_index);
	return exports;
}
