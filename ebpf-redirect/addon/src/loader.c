/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libbpf load / attach / pin. Stateless: load() pins the maps (reusing pins that exist) and the two
 * programs under the pin directory and closes the object; the attach calls open the pinned programs.
 * So an agent restart re-runs load() + attach*() and ends up with the same maps, the tc filters swapped
 * atomically to the new programs, and the pinned sk_lookup link updated in place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/if_arp.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "addon.h"
#include "weft_capture.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif

/* dir/name; an over-long result becomes "" so the following syscall fails with ENOENT, not a wrong path. */
static void join(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size)
		out[0] = '\0';
}

static bool on_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (unsigned long)st.f_type == (unsigned long)BPF_FS_MAGIC;
}

static void throw_no_bpffs(napi_env env, const char *dir, const char *where)
{
	char message[2 * PATH_BYTES + 160];

	snprintf(message, sizeof(message),
		 "pin directory %s: %s is not on a bpf filesystem (mount it: mount -t bpf bpf /sys/fs/bpf)", dir, where);
	throw_plain(env, "ERR_WEFT_NO_BPFFS", message);
}

/* mkdir -p, creating directories only inside a bpf filesystem. */
static bool ensure_pin_dir(napi_env env, const char *dir)
{
	char path[PATH_BYTES], parent[PATH_BYTES], message[PATH_BYTES + 160];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path) || dir[0] != '/') {
		throw_plain(env, "ERR_INVALID_ARG_VALUE", "pinDir must be an absolute path");
		return false;
	}
	memcpy(path, dir, len + 1);
	strcpy(parent, "/");
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (access(path, F_OK) != 0) {
			if (!on_bpffs(parent)) {
				throw_no_bpffs(env, dir, parent);
				return false;
			}
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				snprintf(message, sizeof(message), "create pin directory %s", path);
				throw_errno(env, "mkdir", message, errno);
				return false;
			}
		}
		memcpy(parent, path, i + 1);
		path[i] = saved;
	}
	if (!on_bpffs(dir)) {
		throw_no_bpffs(env, dir, dir);
		return false;
	}
	return true;
}

static void throw_libbpf(napi_env env, const char *code, const char *what, int err)
{
	char message[PATH_BYTES + 9000];
	const char *log = libbpf_log_text();

	snprintf(message, sizeof(message), "%s: %s%s%s", what, strerror(err < 0 ? -err : err),
		 log[0] ? "\nlibbpf says:\n" : "", log);
	throw_plain(env, code, message);
}

/* The layout version compiled into the object (const volatile weft_layout_version in .rodata). */
static int object_layout_version(struct bpf_object *obj, __u32 *out)
{
	struct bpf_map *rodata = bpf_object__find_map_by_name(obj, ".rodata");
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_type *sec;
	const struct btf_var_secinfo *vars;
	const void *data;
	size_t size = 0;
	int sec_id;

	if (!rodata || !btf)
		return -ENOENT;
	data = bpf_map__initial_value(rodata, &size);
	sec_id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (!data || sec_id < 0)
		return -ENOENT;
	sec = btf__type_by_id(btf, (__u32)sec_id);
	vars = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++) {
		const struct btf_type *var = btf__type_by_id(btf, vars[i].type);
		const char *name = var ? btf__name_by_offset(btf, var->name_off) : NULL;
		if (!name || strcmp(name, "weft_layout_version") != 0)
			continue;
		if (vars[i].size != sizeof(__u32) || vars[i].offset + sizeof(__u32) > size)
			return -EINVAL;
		memcpy(out, (const char *)data + vars[i].offset, sizeof(__u32));
		return 0;
	}
	return -ENOENT;
}

/* Version recorded in an already pinned config map: 0 = fresh/unset, -1 = incompatible shape. */
static long pinned_layout_version(const char *config_path)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info), key = 0;
	struct weft_config cfg;
	int fd = bpf_obj_get(config_path);
	long version;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0 || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.value_size != sizeof(cfg) || info.key_size != sizeof(key)) {
		close(fd);
		return -1;
	}
	version = bpf_map_lookup_elem(fd, &key, &cfg) == 0 ? (long)cfg.layout_version : -1;
	close(fd);
	return version;
}

static int stamp_layout_version(struct bpf_object *obj, __u32 version)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "config");
	struct weft_config cfg;
	__u32 key = 0;
	int fd = map ? bpf_map__fd(map) : -1;

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(fd, &key, &cfg) < 0)
		return -errno;
	if (cfg.layout_version == version)
		return 0;
	cfg.layout_version = version;
	return bpf_map_update_elem(fd, &key, &cfg, BPF_ANY) < 0 ? -errno : 0;
}

static const char *program_pin_name(struct bpf_program *prog)
{
	switch (bpf_program__type(prog)) {
	case BPF_PROG_TYPE_SCHED_CLS:
		return WEFT_PIN_PROG_TC;
	case BPF_PROG_TYPE_SK_LOOKUP:
		return WEFT_PIN_PROG_SK_LOOKUP;
	default:
		return bpf_program__name(prog);
	}
}

/* load(objectPath, pinDir) -> { layoutVersion, reusedMaps, createdMaps, programs: { name: pinPath } } */
static napi_value load(napi_env env, napi_callback_info info)
{
	char object_path[PATH_BYTES], pin_dir[PATH_BYTES], path[PATH_BYTES], message[3 * PATH_BYTES];
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	napi_value result, reused, created, programs;
	uint32_t n_reused = 0, n_created = 0;
	__u32 version = 0;
	long pinned;
	int err;

	GET_ARGS(env, info, argc, argv);
	if (!arg_string(env, argv[0], "objectPath", object_path, sizeof(object_path)) ||
	    !arg_string(env, argv[1], "pinDir", pin_dir, sizeof(pin_dir)))
		return NULL;
	if (!ensure_pin_dir(env, pin_dir))
		return NULL;
	libbpf_log_reset();

	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	obj = bpf_object__open_file(object_path, &opts);
	if (!obj) {
		snprintf(message, sizeof(message), "open BPF object %s", object_path);
		throw_libbpf(env, "ERR_WEFT_BPF_OPEN", message, errno);
		return NULL;
	}
	err = object_layout_version(obj, &version);
	if (err || version != WEFT_LAYOUT_VERSION) {
		snprintf(message, sizeof(message),
			 "BPF object %s has map layout version %u but this addon was built for version %u: "
			 "rebuild both from the same weft_capture.h",
			 object_path, err ? 0 : version, WEFT_LAYOUT_VERSION);
		bpf_object__close(obj);
		throw_plain(env, "ERR_WEFT_LAYOUT", message);
		return NULL;
	}
	join(path, sizeof(path), pin_dir, "config");
	pinned = pinned_layout_version(path);
	if (pinned != 0 && pinned != (long)version) {
		if (pinned < 0)
			snprintf(message, sizeof(message),
				 "pinned map %s does not have the layout version %u expects: remove %s (after draining) "
				 "or migrate it",
				 path, version, pin_dir);
		else
			snprintf(message, sizeof(message),
				 "maps pinned in %s have layout version %ld, this object has %u: remove %s (after "
				 "draining) or migrate it",
				 pin_dir, pinned, version, pin_dir);
		bpf_object__close(obj);
		throw_plain(env, "ERR_WEFT_LAYOUT", message);
		return NULL;
	}

	napi_create_object(env, &result);
	napi_create_array(env, &reused);
	napi_create_array(env, &created);
	napi_create_object(env, &programs);
	bpf_object__for_each_map(map, obj) {
		const char *pin = bpf_map__pin_path(map);
		if (!pin)
			continue;
		bool exists = access(pin, F_OK) == 0;
		napi_set_element(env, exists ? reused : created, exists ? n_reused++ : n_created++,
				 make_string(env, bpf_map__name(map)));
	}

	err = bpf_object__load(obj);
	if (err) {
		bool mismatch = strstr(libbpf_log_text(), "reuse pinned map") != NULL;
		snprintf(message, sizeof(message), "load BPF object %s (pins in %s)%s", object_path, pin_dir,
			 mismatch ? ": a pinned map has another shape (layout version mismatch)" : "");
		bpf_object__close(obj);
		throw_libbpf(env, mismatch ? "ERR_WEFT_LAYOUT" : "ERR_WEFT_BPF_LOAD", message, err);
		return NULL;
	}
	err = stamp_layout_version(obj, version);
	if (err) {
		bpf_object__close(obj);
		throw_errno(env, "bpf(BPF_MAP_UPDATE_ELEM)", "record the layout version in config", -err);
		return NULL;
	}
	bpf_object__for_each_program(prog, obj) {
		join(path, sizeof(path), pin_dir, program_pin_name(prog));
		if (unlink(path) < 0 && errno != ENOENT) {
			err = errno;
			bpf_object__close(obj);
			throw_errno(env, "unlink", path, err);
			return NULL;
		}
		err = bpf_program__pin(prog, path);
		if (err) {
			bpf_object__close(obj);
			throw_libbpf(env, "ERR_WEFT_BPF_PIN", path, err);
			return NULL;
		}
		set_prop(env, programs, bpf_program__name(prog), make_string(env, path));
	}
	bpf_object__close(obj);

	set_prop(env, result, "layoutVersion", make_u32(env, version));
	set_prop(env, result, "reusedMaps", reused);
	set_prop(env, result, "createdMaps", created);
	set_prop(env, result, "programs", programs);
	return result;
}

static int pinned_prog(napi_env env, const char *pin_dir, const char *name)
{
	char path[PATH_BYTES], what[PATH_BYTES + 64];
	int fd;

	join(path, sizeof(path), pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		snprintf(what, sizeof(what), "open pinned program %s (call load() first)", path);
		throw_errno(env, "bpf(BPF_OBJ_GET)", what, errno);
	}
	return fd;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

/*
 * The tc program reads the IP header at offset 14: on a device without an Ethernet header it would
 * silently capture nothing, so refuse such devices instead of failing open.
 */
static bool is_ethernet(napi_env env, uint32_t ifindex)
{
	char what[128];
	struct ifreq ifr;
	int fd, ok;

	memset(&ifr, 0, sizeof(ifr));
	if (!if_indextoname(ifindex, ifr.ifr_name)) {
		snprintf(what, sizeof(what), "interface with ifindex %u", ifindex);
		throw_errno(env, "if_indextoname", what, errno);
		return false;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ok = fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		snprintf(what, sizeof(what), "hardware type of %s", ifr.ifr_name);
		throw_errno(env, "ioctl(SIOCGIFHWADDR)", what, errno);
		return false;
	}
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
		snprintf(what, sizeof(what), "%s is not an Ethernet device (type %u): the capture program needs Ethernet framing",
			 ifr.ifr_name, ifr.ifr_hwaddr.sa_family);
		throw_plain(env, "ERR_WEFT_NOT_ETHERNET", what);
		return false;
	}
	return true;
}

/* attachTcIngress(ifindex, pinDir) -> { progId }: clsact ingress filter, replaced atomically if present */
static napi_value attach_tc_ingress(napi_env env, napi_callback_info info)
{
	char pin_dir[PATH_BYTES], what[128];
	uint32_t ifindex;
	napi_value result;
	int fd, err;

	GET_ARGS(env, info, argc, argv);
	if (!arg_u32(env, argv[0], "ifindex", &ifindex) ||
	    !arg_string(env, argv[1], "pinDir", pin_dir, sizeof(pin_dir)))
		return NULL;
	if (!is_ethernet(env, ifindex))
		return NULL;
	fd = pinned_prog(env, pin_dir, WEFT_PIN_PROG_TC);
	if (fd < 0)
		return NULL;
	libbpf_log_reset();
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) {
		close(fd);
		snprintf(what, sizeof(what), "create clsact qdisc on ifindex %u", ifindex);
		throw_errno(env, "netlink(RTM_NEWQDISC)", what, -err);
		return NULL;
	}
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = WEFT_TC_HANDLE, .priority = WEFT_TC_PRIORITY, .prog_fd = fd,
		    .flags = BPF_TC_F_REPLACE);
	err = bpf_tc_attach(&hook, &opts);
	close(fd);
	if (err) {
		snprintf(what, sizeof(what), "attach tc ingress filter on ifindex %u", ifindex);
		throw_errno(env, "netlink(RTM_NEWTFILTER)", what, -err);
		return NULL;
	}
	napi_create_object(env, &result);
	set_prop(env, result, "progId", make_u32(env, opts.prog_id));
	return result;
}

/* queryTcIngress(ifindex) -> progId | null */
static napi_value query_tc_ingress(napi_env env, napi_callback_info info)
{
	uint32_t ifindex;
	char what[128];
	int err;

	GET_ARGS(env, info, argc, argv);
	if (!arg_u32(env, argv[0], "ifindex", &ifindex))
		return NULL;
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = WEFT_TC_HANDLE, .priority = WEFT_TC_PRIORITY);
	err = bpf_tc_query(&hook, &opts);
	if (err == -ENOENT || err == -EINVAL)
		return make_null(env);
	if (err) {
		snprintf(what, sizeof(what), "query tc ingress filter on ifindex %u", ifindex);
		throw_errno(env, "netlink(RTM_GETTFILTER)", what, -err);
		return NULL;
	}
	return make_u32(env, opts.prog_id);
}

/* detachTcIngress(ifindex) -> true if our filter was removed (the clsact qdisc stays: it may be shared) */
static napi_value detach_tc_ingress(napi_env env, napi_callback_info info)
{
	uint32_t ifindex;
	char what[128];
	int err;

	GET_ARGS(env, info, argc, argv);
	if (!arg_u32(env, argv[0], "ifindex", &ifindex))
		return NULL;
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = WEFT_TC_HANDLE, .priority = WEFT_TC_PRIORITY);
	err = bpf_tc_detach(&hook, &opts);
	if (err == -ENOENT || err == -EINVAL || err == -ENODEV)
		return make_bool(env, false);
	if (err) {
		snprintf(what, sizeof(what), "detach tc ingress filter on ifindex %u", ifindex);
		throw_errno(env, "netlink(RTM_DELTFILTER)", what, -err);
		return NULL;
	}
	return make_bool(env, true);
}

/*
 * attachSkLookup(netnsPath, pinDir) -> { reused, linkId, progId }
 * Re-opens the pinned link when it is still attached to this netns (and points it at the freshly
 * loaded program); attaches and pins a new link otherwise. A netns can run several sk_lookup programs,
 * so never attach twice: the pin is the record that we already did.
 */
static napi_value attach_sk_lookup(napi_env env, napi_callback_info info)
{
	char netns_path[PATH_BYTES], pin_dir[PATH_BYTES], link_path[PATH_BYTES], what[2 * PATH_BYTES + 128];
	struct bpf_link_info link_info;
	__u32 len = sizeof(link_info);
	struct stat ns_stat;
	napi_value result;
	int prog_fd, ns_fd, link_fd;
	bool reused = false;

	GET_ARGS(env, info, argc, argv);
	if (!arg_string(env, argv[0], "netnsPath", netns_path, sizeof(netns_path)) ||
	    !arg_string(env, argv[1], "pinDir", pin_dir, sizeof(pin_dir)))
		return NULL;
	ns_fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (ns_fd < 0 || fstat(ns_fd, &ns_stat) < 0) {
		int err = errno;
		if (ns_fd >= 0)
			close(ns_fd);
		snprintf(what, sizeof(what), "open network namespace %s", netns_path);
		throw_errno(env, "open", what, err);
		return NULL;
	}
	prog_fd = pinned_prog(env, pin_dir, WEFT_PIN_PROG_SK_LOOKUP);
	if (prog_fd < 0) {
		close(ns_fd);
		return NULL;
	}
	join(link_path, sizeof(link_path), pin_dir, WEFT_PIN_LINK_SK_LOOKUP);
	link_fd = bpf_obj_get(link_path);
	if (link_fd >= 0) {
		memset(&link_info, 0, sizeof(link_info));
		if (bpf_obj_get_info_by_fd(link_fd, &link_info, &len) < 0 || link_info.type != BPF_LINK_TYPE_NETNS ||
		    link_info.netns.netns_ino == 0) {
			/* Defunct (its netns is gone) or not ours: replace the pin. */
			close(link_fd);
			link_fd = -1;
			unlink(link_path);
		} else if (link_info.netns.netns_ino != (__u32)ns_stat.st_ino) {
			snprintf(what, sizeof(what),
				 "the sk_lookup link pinned at %s is attached to netns inode %u, not %s (inode %lu): "
				 "use one pin directory per network namespace",
				 link_path, link_info.netns.netns_ino, netns_path, (unsigned long)ns_stat.st_ino);
			close(link_fd);
			close(prog_fd);
			close(ns_fd);
			throw_plain(env, "ERR_WEFT_LINK_NETNS", what);
			return NULL;
		} else {
			if (link_info.prog_id != prog_id(prog_fd) && bpf_link_update(link_fd, prog_fd, NULL) < 0) {
				int err = errno;
				snprintf(what, sizeof(what), "update the program of the sk_lookup link %s", link_path);
				close(link_fd);
				close(prog_fd);
				close(ns_fd);
				throw_errno(env, "bpf(BPF_LINK_UPDATE)", what, err);
				return NULL;
			}
			reused = true;
		}
	} else if (errno != ENOENT) {
		int err = errno;
		snprintf(what, sizeof(what), "open pinned link %s", link_path);
		close(prog_fd);
		close(ns_fd);
		throw_errno(env, "bpf(BPF_OBJ_GET)", what, err);
		return NULL;
	}
	if (link_fd < 0) {
		link_fd = bpf_link_create(prog_fd, ns_fd, BPF_SK_LOOKUP, NULL);
		if (link_fd < 0) {
			int err = errno;
			snprintf(what, sizeof(what), "attach sk_lookup to %s", netns_path);
			close(prog_fd);
			close(ns_fd);
			throw_errno(env, "bpf(BPF_LINK_CREATE)", what, err);
			return NULL;
		}
		if (bpf_obj_pin(link_fd, link_path) < 0) {
			int err = errno;
			snprintf(what, sizeof(what), "pin sk_lookup link at %s", link_path);
			close(link_fd); /* unpinned: closing detaches it */
			close(prog_fd);
			close(ns_fd);
			throw_errno(env, "bpf(BPF_OBJ_PIN)", what, err);
			return NULL;
		}
	}
	memset(&link_info, 0, sizeof(link_info));
	len = sizeof(link_info);
	bpf_obj_get_info_by_fd(link_fd, &link_info, &len);
	napi_create_object(env, &result);
	set_prop(env, result, "reused", make_bool(env, reused));
	set_prop(env, result, "linkId", make_u32(env, link_info.id));
	set_prop(env, result, "progId", make_u32(env, link_info.prog_id));
	close(link_fd);
	close(prog_fd);
	close(ns_fd);
	return result;
}

/* detachSkLookup(pinDir) -> true if a pinned link was detached and unpinned */
static napi_value detach_sk_lookup(napi_env env, napi_callback_info info)
{
	char pin_dir[PATH_BYTES], link_path[PATH_BYTES];
	int link_fd;

	GET_ARGS(env, info, argc, argv);
	if (!arg_string(env, argv[0], "pinDir", pin_dir, sizeof(pin_dir)))
		return NULL;
	join(link_path, sizeof(link_path), pin_dir, WEFT_PIN_LINK_SK_LOOKUP);
	link_fd = bpf_obj_get(link_path);
	if (link_fd < 0) {
		if (errno == ENOENT)
			return make_bool(env, false);
		throw_errno(env, "bpf(BPF_OBJ_GET)", link_path, errno);
		return NULL;
	}
	bpf_link_detach(link_fd); /* fails harmlessly if already defunct; unpinning below releases it */
	close(link_fd);
	if (unlink(link_path) < 0 && errno != ENOENT) {
		throw_errno(env, "unlink", link_path, errno);
		return NULL;
	}
	return make_bool(env, true);
}

static void probe_result(napi_env env, napi_value obj, const char *name, int rc)
{
	set_prop(env, obj, name, make_bool(env, rc == 1));
}

/* probe(bpffsPath) -> raw feature booleans; the agent turns them into a refusal with reasons. */
static napi_value probe(napi_env env, napi_callback_info info)
{
	char bpffs[PATH_BYTES] = "/sys/fs/bpf";
	struct utsname uts;
	napi_value result;
	int fd, one = 1;
	bool transparent = false, clsact = false;
	unsigned int lo;

	GET_ARGS(env, info, argc, argv);
	if (!arg_is_absent(env, argv[0]) && !arg_string(env, argv[0], "bpffsPath", bpffs, sizeof(bpffs)))
		return NULL;
	libbpf_log_reset();
	napi_create_object(env, &result);
	if (uname(&uts) == 0)
		set_prop(env, result, "kernel", make_string(env, uts.release));
	set_prop(env, result, "bpffsPath", make_string(env, bpffs));
	set_prop(env, result, "bpffs", make_bool(env, on_bpffs(bpffs)));
	probe_result(env, result, "progTc", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, NULL));
	probe_result(env, result, "progSkLookup", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, NULL));
	probe_result(env, result, "mapSockmap", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKMAP, NULL));
	probe_result(env, result, "helperSkcLookupTcp",
		     libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skc_lookup_tcp, NULL));
	probe_result(env, result, "helperSkAssign",
		     libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_LOOKUP, BPF_FUNC_sk_assign, NULL));

	/* clsact: create it on loopback (removing it again if we made it), EEXIST also proves support. */
	lo = if_nametoindex("lo");
	if (lo) {
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)lo, .attach_point = BPF_TC_INGRESS);
		int err = bpf_tc_hook_create(&hook);
		clsact = err == 0 || err == -EEXIST;
		if (err == 0) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
		}
	}
	set_prop(env, result, "tcClsact", make_bool(env, clsact));

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		transparent = setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) == 0;
		close(fd);
	}
	set_prop(env, result, "transparentSockets", make_bool(env, transparent));
	return result;
}

napi_value init_loader(napi_env env, napi_value exports)
{
	EXPORT_FN(env, exports, "load", load);
	EXPORT_FN(env, exports, "attachTcIngress", attach_tc_ingress);
	EXPORT_FN(env, exports, "queryTcIngress", query_tc_ingress);
	EXPORT_FN(env, exports, "detachTcIngress", detach_tc_ingress);
	EXPORT_FN(env, exports, "attachSkLookup", attach_sk_lookup);
	EXPORT_FN(env, exports, "detachSkLookup", detach_sk_lookup);
	EXPORT_FN(env, exports, "probe", probe);
	return exports;
}
