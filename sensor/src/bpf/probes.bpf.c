// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Nightjar's Linux probes: exec, fork, exit, file, credential and session change events into
 * one BPF ring buffer.
 *
 * Only BTF-typed raw tracepoints (tp_btf/) are used: they need no tracefs, and unlike the
 * trampoline-based program types (fentry, LSM) they load on locked-down kernels too.
 *
 * exec  tp_btf/sched_process_exec fires once per successful execve, after the new image is
 *       mapped and its argv copied to the new stack, in the context of the process itself.
 *       argv is read from mm->arg_start..arg_end: its first ARGV_HEAD_CAP bytes and, when it
 *       is longer, its last ARGV_TAIL_CAP bytes, plus bprm->argc, so a padded argv keeps both
 *       ends and its true count. The executable is the canonical path of the new image
 *       (bprm->file, the interpreter for a script) and the working directory the task's; both
 *       are built by walking dentries and mounts (walk_path). Also read: the credentials, the
 *       audit login uid and session, the POSIX session and process group, the controlling
 *       tty, the pid namespace level and the cgroup's leaf name (container detection), and,
 *       when `[sensor] env_vars` is set, the first ENV_CAP bytes of the environment (user
 *       space keeps only the configured names).
 * fork  tp_btf/sched_process_fork, new processes only (not threads).
 * exit  tp_btf/sched_process_exit, when the last thread of a process exits.
 * cred  tp_btf/sys_enter and tp_btf/sys_exit (programs of their own, attached only when a
 *       loaded rule reads credential or session changes, since any program there slows
 *       every system call):
 *       the ids a thread had entering setuid, setgid, setreuid, setregid, setresuid,
 *       setresgid, setfsuid or setfsgid, compared on exit with what it has then; a change of
 *       any user id (real, effective, saved, file-system) is a uid_change, of any group id a
 *       gid_change (both when both changed), with the ids before and after; a successful
 *       setsid is a session_id_change. Elastic Defend hooks commit_creds() instead (fentry),
 *       which also sees setuid images at exec and credentials a kernel exploit commits
 *       without a system call; trampolines do not load on this kind of locked-down kernel,
 *       and a setuid image's new ids are in its exec event.
 * file  tp_btf/sys_enter and tp_btf/sys_exit, attached only when a loaded rule reads file
 *       events: creation (open, openat, openat2 or creat that created the file: FMODE_CREATED
 *       on the returned descriptor's file), modification (the first write, pwrite, writev,
 *       pwritev or ftruncate to an open regular file, and again after REWRITE_NS of writing;
 *       writes through a mapping are not seen), rename (rename,
 *       renameat, renameat2; with the original path) and deletion (unlink, unlinkat), the last
 *       two reported when the call succeeded. Paths given relative to a directory descriptor
 *       or the working directory are made absolute from that directory's path; they are not
 *       otherwise resolved (`..` and symbolic links stay as given). Only paths some loaded rule
 *       can match are published: the `prefixes` LPM trie, the `names` and `extensions` hashes
 *       and the `comms` (acting process name) hash, filled by user space from the rules;
 *       `files_all` admits everything. What the filters drop is counted per kind in
 *       `filtered`.
 *
 * Processes whose tgid is in `muted` (the sensor, the agent) are skipped everywhere. When the
 * ring buffer is full a sample is dropped and counted per kind in `drops`.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

#define FMODE_WRITE 0x2
#define FMODE_CREATED 0x100000
#define O_CREAT 0100
#define O_TRUNC 01000
#define S_IFMT 0170000
#define S_IFREG 0100000
#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
/* Components walked up from a dentry before the path is reported as cut. */
#define WALK_DEPTH 40
/* A walked path: its bytes end at PATH_CAP in a buffer of WALK_BUF bytes. */
#define WALK_BUF (PATH_CAP + NAME_CAP)

/* x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define NR_write 1
#define NR_open 2
#define NR_close 3
#define NR_pwrite64 18
#define NR_writev 20
#define NR_ftruncate 77
#define NR_pwritev 296
#define NR_pwritev2 328
#define NR_rename 82
#define NR_creat 85
#define NR_unlink 87
#define NR_openat 257
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_renameat2 316
#define NR_openat2 437

/* Set by user space before the object is loaded. */
const volatile u32 env_cap = 0;
const volatile u32 files_all = 0;
/* Components, texts or process name prefixes are loaded (`patterns`, `components`). */
const volatile u32 file_patterns_on = 0;

/*
 * Scratch records: each part at a fixed place (so every access has a constant bound for the
 * verifier), copied into an exactly sized ring buffer sample by write_parts().
 */
struct exec_rec {
	struct sample_hdr h;
	struct exec_body b;
	char exe[WALK_BUF];
	char cwd[WALK_BUF];
	char head[ARGV_HEAD_CAP];
	char tail[ARGV_TAIL_CAP];
	char env[ENV_CAP];
	char tty[TTY_CAP];
	char cgroup[CGROUP_CAP];
};

/* A file path in two pieces: a walked directory (or file) path and a path string a system
 * call was given, joined by `/` when both are there. */
struct file_path {
	u32 base_off; /* where the walked path starts in `base` (it ends at PATH_CAP) */
	u32 base_len;
	u32 rel_len;
	u32 name_off; /* where the file name starts in `rel` (rel_len > 0) */
	char base[WALK_BUF];
	char rel[PATH_CAP];
};

struct file_rec {
	struct sample_hdr h;
	struct file_body b;
};

struct lpm_key {
	u32 prefixlen;
	char data[LPM_CAP];
};

/* Scratch for the file probes: the record, its paths and the filter's lookup keys. */
struct file_scratch {
	struct file_rec rec;
	struct file_path path;
	struct file_path orig;
	struct lpm_key lpm;
	char lpm_spill[LPM_CAP]; /* room for reads that run past the key */
	char name[NAME_CAP];
	char ext[COMM_CAP];
	char comm[COMM_CAP];
};

/* A file system call seen on entry, completed on exit (by thread id). */
struct pending {
	u32 action;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct exec_rec);
} exec_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct file_scratch);
} file_scratch SEC(".maps");

/* unlink and rename seen on entry and admitted, published on a successful exit. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, u32);
	__type(value, struct file_scratch);
} pending_files SEC(".maps");

/* Open files already reported as modified (or found filtered), by struct file address, with
 * when: a file is reported again once REWRITE_NS have passed, and forgotten when closed. */
#define REWRITE_NS (5ULL * 1000 * 1000 * 1000)
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, u64);
} written SEC(".maps");

/* Threads inside an open that may create (O_CREAT). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u8);
} pending_creates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KINDS);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KINDS);
	__type(key, u32);
	__type(value, u64);
} filtered SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u8);
} muted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct lpm_key);
	__type(value, u8);
} prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[NAME_CAP]);
	__type(value, u8);
} names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[COMM_CAP]);
	__type(value, u8);
} extensions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[COMM_CAP]);
	__type(value, u8);
} comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[COMM_CAP]);
	__type(value, u8);
} components SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct file_patterns);
} patterns SEC(".maps");

/* Blocking rules (see events.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2); /* one per generation */
	__type(key, u32);
	__type(value, struct block_conf);
} block_conf SEC(".maps");

/* The epoch of the blocking set: its low bit is the live generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} block_live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * BLOCK_MAX * (BLOCK_ARGS + 2)); /* both generations, full */
	__type(key, struct block_key);
	__type(value, struct block_val);
} block_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * BLOCK_MAX); /* both generations, full */
	__type(key, struct block_exe_key);
	__type(value, struct block_val);
} block_exes SEC(".maps");

/* Execs blocked, and execs a blocking rule may have matched that were let through. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} block_stats SEC(".maps");

/* Lookup keys, built per exec. */
struct block_scratch {
	struct block_key key;
	struct block_exe_key exe;
	u32 tag; /* the generation being checked, << BK_GEN_SHIFT */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct block_scratch);
} block_scratch SEC(".maps");


static __always_inline void count(void *map, u32 kind)
{
	u64 *n = bpf_map_lookup_elem(map, &kind);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline bool is_muted(u32 tgid)
{
	return bpf_map_lookup_elem(&muted, &tgid) != NULL;
}

/* The header fields every kind shares, for the current task. */
static __always_inline void fill_hdr(struct sample_hdr *h, u32 kind, struct task_struct *task)
{
	h->kind = kind;
	h->flags = 0;
	h->time_boot_ns = bpf_ktime_get_boot_ns();
	h->start_boot_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	h->pid = BPF_CORE_READ(task, tgid);
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = BPF_CORE_READ(task, cred, uid.val);
	h->euid = BPF_CORE_READ(task, cred, euid.val);
	h->gid = BPF_CORE_READ(task, cred, gid.val);
	h->egid = BPF_CORE_READ(task, cred, egid.val);
}

static __always_inline void output(void *rec, u64 size, u32 kind)
{
	if (bpf_ringbuf_output(&events, rec, size, 0))
		count(&drops, kind);
}

/*
 * The path of `dentry` on mount `vfsmnt`, as d_path() would give it (relative to the root of
 * the mount namespace), built backwards so that it ends at buf[PATH_CAP]: returns where it
 * starts (PATH_CAP when there is no path). Sets F_PATH_TRUNCATED in `flags` when the walk
 * stopped short (deeper than WALK_DEPTH, or longer than PATH_CAP).
 */
static __always_inline u32 walk_path(struct dentry *dentry, struct vfsmount *vfsmnt, char *buf,
				     u32 *flags)
{
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	u32 pos = PATH_CAP;
	bool complete = false;
	for (int i = 0; i < WALK_DEPTH; i++) {
		struct dentry *root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		if (dentry == root || dentry == parent) {
			if (dentry != root) {
				complete = true; /* a dentry outside any mount: as far as it goes */
				break;
			}
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt) {
				complete = true; /* the root of the namespace */
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vfsmnt = &up->mnt;
			continue;
		}
		const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
		char part[NAME_CAP];
		long n = bpf_probe_read_kernel_str(part, sizeof(part), name);
		if (n <= 1) {
			complete = true;
			break;
		}
		u32 len = (u32)(n - 1) & (NAME_CAP - 1);
		if (len + 1 > pos)
			break;
		pos -= len;
		pos &= (PATH_CAP - 1);
		bpf_probe_read_kernel(buf + pos, len, part);
		pos -= 1;
		pos &= (PATH_CAP - 1);
		buf[pos] = '/';
		dentry = parent;
	}
	if (!complete)
		*flags |= F_PATH_TRUNCATED;
	if (pos == PATH_CAP && complete) {
		pos = PATH_CAP - 1;
		buf[pos] = '/';
	}
	return pos;
}

/* ---- blocking ---------------------------------------------------------------------------- */

/* `v & mask`, kept as an instruction the verifier sees (the compiler would drop a mask it
 * can prove redundant, leaving the verifier a register without its bound). */
#define BOUND(v, mask)                                                                      \
	({                                                                                  \
		u32 __b = (v);                                                              \
		asm volatile("%[b] &= %[m]" : [b] "+r"(__b) : [m] "i"(mask));              \
		__b;                                                                        \
	})

/* ASCII lowercase of eight bytes at once (SWAR, no branch). */
static __always_inline u64 lower8(u64 x)
{
	u64 h = x & 0x7f7f7f7f7f7f7f7fULL;
	u64 ge_a = h + 0x3f3f3f3f3f3f3f3fULL; /* high bit set where the byte >= 'A' */
	u64 gt_z = h + 0x2525252525252525ULL; /* high bit set where the byte > 'Z' */
	u64 upper = (ge_a ^ gt_z) & ~x & 0x8080808080808080ULL;
	return x | ((upper >> 2) & 0x2020202020202020ULL);
}

/* The bits `kind` gives the value in key->s (NUL padded): 0 when it is no key. */
static __always_inline u64 short_bits(struct block_key *key, u32 kind, u32 tag, u32 word)
{
	key->kind = kind | tag;
	struct block_val *v = bpf_map_lookup_elem(&block_keys, key);
	return v ? v->bits[word & 1] : 0;
}

/* The blockers the value in key->s (a name) selects, exactly and case-insensitively. */
static __always_inline u32 name_bits(struct block_key *key, u32 kinds, u32 tag, u32 cs, u32 ci)
{
	u32 bits = 0;
	if (kinds & (1u << cs))
		bits |= (u32)short_bits(key, cs, tag, 0);
	if (kinds & (1u << ci)) {
		u64 *w = (u64 *)key->s;
		for (u32 i = 0; i < BLOCK_VAL / 8; i++)
			w[i] = lower8(w[i]);
		bits |= (u32)short_bits(key, ci, tag, 0);
	}
	return bits;
}

/* Scans argv (the head, then the tail) for the argument values the candidates need. */
struct arg_scan {
	u32 tail;       /* scanning the tail buffer */
	u32 len;        /* bytes in the buffer scanned */
	u32 start;      /* where the current argument starts */
	u32 skip_first; /* the tail's first argument is cut (its start was not read) */
	u32 kinds;
	u64 found[2];   /* bit 4k+j: blocker k's value j was seen */
	u64 want[2];    /* the bits of found still needed */
};

static long arg_scan_cb(u32 i, void *ctx)
{
	struct arg_scan *as = ctx;
	u32 zero = 0;
	struct exec_rec *rec = bpf_map_lookup_elem(&exec_scratch, &zero);
	struct block_scratch *bs = bpf_map_lookup_elem(&block_scratch, &zero);
	if (!rec || !bs || i >= as->len)
		return 1;
	char c = as->tail ? rec->tail[i & (ARGV_TAIL_CAP - 1)] : rec->head[i & (ARGV_HEAD_CAP - 1)];
	if (c != 0 && i + 1 < as->len)
		return 0;
	u32 start = as->start;
	as->start = i + 1;
	/* The buffer ends inside an argument: only part of it was read, never compared. */
	if (c != 0)
		return 1;
	/* An argument ends at i (its NUL). */
	u32 len = i > start ? i - start : 0;
	if (as->skip_first) {
		as->skip_first = 0;
		return 0;
	}
	if (len == 0 || len >= BLOCK_VAL)
		return 0;
	struct block_key *key = &bs->key;
	u64 *w = (u64 *)key->s;
	for (u32 k = 0; k < BLOCK_VAL / 8; k++)
		w[k] = 0;
	const char *src = as->tail ? &rec->tail[start & (ARGV_TAIL_CAP - 1)]
				   : &rec->head[start & (ARGV_HEAD_CAP - 1)];
	if (bpf_probe_read_kernel(key->s, BOUND(len, BLOCK_VAL - 1), src))
		return 0;
	if (as->kinds & (1u << BK_ARG)) {
		key->kind = BK_ARG | bs->tag;
		struct block_val *v = bpf_map_lookup_elem(&block_keys, key);
		if (v) {
			as->found[0] |= v->bits[0];
			as->found[1] |= v->bits[1];
		}
	}
	if (as->kinds & (1u << BK_ARG_CI)) {
		for (u32 k = 0; k < BLOCK_VAL / 8; k++)
			w[k] = lower8(w[k]);
		key->kind = BK_ARG_CI | bs->tag;
		struct block_val *v = bpf_map_lookup_elem(&block_keys, key);
		if (v) {
			as->found[0] |= v->bits[0];
			as->found[1] |= v->bits[1];
		}
	}
	bool done = (as->want[0] & ~as->found[0]) == 0 && (as->want[1] & ~as->found[1]) == 0;
	return done ? 1 : 0;
}

/* Blockers (bit k) whose nibble in `missing` (bits 4k..4k+3 over two words) is not zero.
 * Branch-free, as the rest of this path: the verifier walks it once per path. */
static __always_inline u32 unsatisfied(u64 m0, u64 m1)
{
	m0 |= m0 >> 1;
	m0 |= m0 >> 2;
	m1 |= m1 >> 1;
	m1 |= m1 >> 2;
	u32 out = 0;
	for (u32 k = 0; k < 16; k++) {
		out |= (u32)((m0 >> (4 * k)) & 1) << k;
		out |= (u32)((m1 >> (4 * k)) & 1) << (k + 16);
	}
	return out;
}

static __always_inline u32 popcount32(u32 x)
{
	x = x - ((x >> 1) & 0x55555555);
	x = (x & 0x33333333) + ((x >> 2) & 0x33333333);
	x = (x + (x >> 4)) & 0x0f0f0f0f;
	return (x * 0x01010101) >> 24;
}

/* blocking_rule()'s answer when a rule matched all it could see but an argument it needs
 * may be in the part of argv not read. */
#define BLOCK_UNSURE 0x80000000u

/*
 * Decides whether the current exec (its record in exec_scratch: the executable at exe_off,
 * argv head and tail read) is one a blocking rule matches: the rule's index + 1, 0 for none,
 * or BLOCK_UNSURE (let through: fail open). A global function, so the verifier checks it
 * once, not once for every path of the exec program that reaches it.
 */
__attribute__((noinline)) u32 blocking_rule(u32 exe_off, u32 head, u32 tail)
{
	u32 zero = 0;
	u32 *live = bpf_map_lookup_elem(&block_live, &zero);
	if (!live)
		return 0;
	u32 epoch = *(volatile u32 *)live;
	u32 gen = epoch & 1;
	struct block_conf *conf = bpf_map_lookup_elem(&block_conf, &gen);
	if (!conf || conf->count == 0)
		return 0;
	struct block_scratch *bs = bpf_map_lookup_elem(&block_scratch, &zero);
	struct exec_rec *rec = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!bs || !rec)
		return 0;
	u32 tag = gen << BK_GEN_SHIFT;
	bs->tag = tag;
	struct task_struct *task = bpf_get_current_task_btf();
	head = head > ARGV_HEAD_CAP ? ARGV_HEAD_CAP : head;
	tail = tail > ARGV_TAIL_CAP ? ARGV_TAIL_CAP : tail;
	u32 unsure = 0;
	u32 n = conf->count < BLOCK_MAX ? conf->count : BLOCK_MAX;
	u32 cand = n >= 32 ? 0xffffffffu : (1u << n) - 1;
	u32 kinds = conf->kinds;
	struct block_key *key = &bs->key;
	u64 *w = (u64 *)key->s;

	/* The image's name: its dentry's (the canonical basename, as process.name). */
	if (conf->need_name) {
		for (u32 i = 0; i < BLOCK_VAL / 8; i++)
			w[i] = 0;
		/* At sched_process_exec the task's mm is the new image's: exe_file is bprm->file. */
		const unsigned char *nm =
			BPF_CORE_READ(task, mm, exe_file, f_path.dentry, d_name.name);
		long r = bpf_probe_read_kernel_str(key->s, BLOCK_VAL, nm);
		u32 bits = r > 1 ? name_bits(key, kinds, tag, BK_NAME, BK_NAME_CI) : 0;
		cand &= bits | ~conf->need_name;
	}
	/* The parent's image name, as process.parent.name. */
	if (cand && conf->need_parent) {
		for (u32 i = 0; i < BLOCK_VAL / 8; i++)
			w[i] = 0;
		const unsigned char *pn =
			BPF_CORE_READ(task, real_parent, mm, exe_file, f_path.dentry, d_name.name);
		long r = pn ? bpf_probe_read_kernel_str(key->s, BLOCK_VAL, pn) : 0;
		u32 bits = r > 1 ? name_bits(key, kinds, tag, BK_PARENT, BK_PARENT_CI) : 0;
		cand &= bits | ~conf->need_parent;
	}
	/* The canonical executable path, as process.executable. */
	if (cand && conf->need_exe) {
		u32 bits = 0;
		u32 len = rec->b.exe_len;
		struct block_exe_key *ek = &bs->exe;
		u64 *ew = (u64 *)ek->s;
		if (len && len < BLOCK_EXE) {
			for (u32 i = 0; i < BLOCK_EXE / 8; i++)
				ew[i] = 0;
			if (!bpf_probe_read_kernel(ek->s, BOUND(len, BLOCK_EXE - 1),
						   &rec->exe[exe_off & (PATH_CAP - 1)])) {
				if (kinds & (1u << BK_EXE)) {
					ek->kind = BK_EXE | tag;
					struct block_val *v = bpf_map_lookup_elem(&block_exes, ek);
					if (v)
						bits |= (u32)v->bits[0];
				}
				if (kinds & (1u << BK_EXE_CI)) {
					for (u32 i = 0; i < BLOCK_EXE / 8; i++)
						ew[i] = lower8(ew[i]);
					ek->kind = BK_EXE_CI | tag;
					struct block_val *v = bpf_map_lookup_elem(&block_exes, ek);
					if (v)
						bits |= (u32)v->bits[0];
				}
			}
		}
		cand &= bits | ~conf->need_exe;
	}
	if (!cand)
		return 0;
	/* Arguments, for the candidates that need some. */
	u32 with_args = cand & conf->need_args;
	if (with_args) {
		/* The nibbles of the candidates that need arguments. */
		u64 sel0 = 0, sel1 = 0;
		for (u32 k = 0; k < 16; k++) {
			sel0 |= (u64)(((with_args >> k) & 1) * 0xf) << (4 * k);
			sel1 |= (u64)(((with_args >> (k + 16)) & 1) * 0xf) << (4 * k);
		}
		struct arg_scan as = {
			.tail = 0,
			.len = head,
			.start = 0,
			.skip_first = 0,
			.kinds = kinds,
			.found = {0, 0},
			.want = {conf->arg_need[0] & sel0, conf->arg_need[1] & sel1},
		};
		if (head)
			bpf_loop(ARGV_HEAD_CAP, arg_scan_cb, &as, 0);
		bool done = (as.want[0] & ~as.found[0]) == 0 && (as.want[1] & ~as.found[1]) == 0;
		if (!done && tail) {
			as.tail = 1;
			as.len = tail;
			as.start = 0;
			/* Read from argv's end: unless it continues the head exactly, its first
			 * argument is cut. */
			as.skip_first = 1;
			bpf_loop(ARGV_TAIL_CAP, arg_scan_cb, &as, 0);
		}
		u32 missing = unsatisfied(as.want[0] & ~as.found[0], as.want[1] & ~as.found[1]);
		/* A value not seen may be in what was not read, or cut across the head and tail:
		 * not sure, so not blocked. */
		bool argv_whole = !(rec->h.flags & (F_ARGS_TRUNCATED | F_ARGS_UNREADABLE)) && !tail;
		if ((missing & with_args) && !argv_whole)
			unsure = BLOCK_UNSURE;
		cand &= ~missing;
	}
	if (!cand)
		return unsure;
	/* The set was swapped while this exec was checked: some lookups may have been the
	 * old set's, some the new one's. Not sure, so not blocked. */
	if (*(volatile u32 *)live != epoch)
		return BLOCK_UNSURE;
	/* The lowest candidate: the bits below it, counted (BPF has no count-trailing-zeros). */
	u32 k = popcount32((cand & -cand) - 1);
	return conf->rule[k & (BLOCK_MAX - 1)];
}

/* ---- exec -------------------------------------------------------------------------------- */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(nightjar_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	u32 zero = 0;
	u32 tgid = BPF_CORE_READ(task, tgid);
	if (is_muted(tgid))
		return 0;
	struct exec_rec *rec = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!rec)
		return 0;
	struct sample_hdr *h = &rec->h;
	struct exec_body *b = &rec->b;
	fill_hdr(h, KIND_EXEC, task);
	h->start_boot_ns = BPF_CORE_READ(task, start_boottime);
	if (bpf_core_field_exists(task->loginuid)) {
		b->auid = BPF_CORE_READ(task, loginuid.val);
		b->audit_session = BPF_CORE_READ(task, sessionid);
	} else {
		b->auid = 0;
		b->audit_session = 0;
		h->flags |= F_NO_LOGINUID;
	}
	struct signal_struct *sig = BPF_CORE_READ(task, signal);
	b->sid = BPF_CORE_READ(sig, pids[PIDTYPE_SID], numbers[0].nr);
	b->pgid = BPF_CORE_READ(sig, pids[PIDTYPE_PGID], numbers[0].nr);
	struct pid *tp = BPF_CORE_READ(task, thread_pid);
	u32 level = BPF_CORE_READ(tp, level);
	b->pidns_level = level;
	b->ns_pid = 0;
	if (level < 32) {
		struct upid up;
		if (!bpf_probe_read_kernel(&up, sizeof(up), &tp->numbers[level]))
			b->ns_pid = up.nr;
	}
	b->argc = BPF_CORE_READ(bprm, argc);
	b->block_rule = 0;

	/* Executable: the canonical path of the new image, else bprm->filename. */
	b->exe_len = 0;
	b->cwd_len = 0;
	u32 exe_off = 0;
	u32 cwd_off = 0;
	struct file *exe_file = BPF_CORE_READ(bprm, file);
	if (exe_file) {
		struct path p;
		if (!bpf_probe_read_kernel(&p, sizeof(p), &exe_file->f_path)) {
			u32 flags = 0;
			exe_off = walk_path(p.dentry, p.mnt, rec->exe, &flags);
			b->exe_len = (PATH_CAP - exe_off) & (PATH_CAP - 1);
			if (b->exe_len)
				h->flags |= F_EXE_RESOLVED | flags;
		}
	}
	if (!b->exe_len) {
		exe_off = 0;
		const char *filename = BPF_CORE_READ(bprm, filename);
		long n = bpf_probe_read_kernel_str(rec->exe, PATH_CAP, filename);
		if (n > 0) {
			b->exe_len = (u32)(n - 1) & (PATH_CAP - 1);
			if (n == PATH_CAP)
				h->flags |= F_PATH_TRUNCATED;
		}
	}
	{
		struct path p;
		struct fs_struct *fsp = BPF_CORE_READ(task, fs);
		if (fsp && !bpf_probe_read_kernel(&p, sizeof(p), &fsp->pwd)) {
			u32 flags = 0;
			cwd_off = walk_path(p.dentry, p.mnt, rec->cwd, &flags);
			b->cwd_len = (PATH_CAP - cwd_off) & (PATH_CAP - 1);
			if (b->cwd_len)
				h->flags |= F_CWD | (flags ? F_CWD_TRUNCATED : 0);
		}
	}

	/* argv: the head, and the tail when argv is longer than the head. */
	unsigned long arg_start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(task, mm, arg_end);
	u64 args_len = arg_end > arg_start ? arg_end - arg_start : 0;
	u32 head = args_len > ARGV_HEAD_CAP ? ARGV_HEAD_CAP : (u32)args_len;
	u32 tail = 0;
	if (args_len > ARGV_HEAD_CAP) {
		u64 rest = args_len - ARGV_HEAD_CAP;
		tail = rest > ARGV_TAIL_CAP ? ARGV_TAIL_CAP : (u32)rest;
		if (rest > ARGV_TAIL_CAP)
			h->flags |= F_ARGS_TRUNCATED;
	}
	if (head > ARGV_HEAD_CAP)
		head = ARGV_HEAD_CAP;
	if (tail > ARGV_TAIL_CAP)
		tail = ARGV_TAIL_CAP;
	if (head && bpf_probe_read_user(rec->head, head, (const void *)arg_start)) {
		head = 0;
		tail = 0;
		h->flags |= F_ARGS_UNREADABLE;
	}
	if (tail && bpf_probe_read_user(rec->tail, tail, (const void *)(arg_end - tail))) {
		tail = 0;
		h->flags |= F_ARGS_TRUNCATED;
	}
	b->head_len = head;
	b->tail_len = tail;

	/* Blocking rules: a match is killed before the new image runs an instruction (the
	 * signal is delivered on the way back to user space). Never init. */
	if (tgid != 1) {
		u32 rule = blocking_rule(exe_off & (PATH_CAP - 1), head, tail);
		bool unsure = rule == BLOCK_UNSURE;
		if (unsure)
			rule = 0;
		if (rule) {
			if (bpf_send_signal(9) == 0) {
				h->flags |= F_BLOCKED;
				b->block_rule = rule;
				count(&block_stats, BLOCK_STAT_BLOCKED);
			} else {
				h->flags |= F_BLOCK_FAILED;
				b->block_rule = rule;
				count(&block_stats, BLOCK_STAT_FAILED_OPEN);
			}
		} else if (unsure) {
			h->flags |= F_BLOCK_FAILED;
			count(&block_stats, BLOCK_STAT_FAILED_OPEN);
		}
	}

	/* The environment, only when names are configured. */
	b->env_len = 0;
	if (env_cap) {
		unsigned long env_start = BPF_CORE_READ(task, mm, env_start);
		unsigned long env_end = BPF_CORE_READ(task, mm, env_end);
		u64 env_len = env_end > env_start ? env_end - env_start : 0;
		u32 n = env_len > ENV_CAP ? ENV_CAP : (u32)env_len;
		if (env_len > ENV_CAP)
			h->flags |= F_ENV_TRUNCATED;
		if (n > ENV_CAP)
			n = ENV_CAP;
		if (n && !bpf_probe_read_user(rec->env, n, (const void *)env_start))
			b->env_len = n;
	}

	/* The controlling terminal's name (`pts/3`), and the cgroup's leaf name. */
	b->tty_len = 0;
	struct tty_struct *tty = BPF_CORE_READ(sig, tty);
	if (tty) {
		long n = bpf_probe_read_kernel_str(rec->tty, TTY_CAP, &tty->name);
		if (n > 1)
			b->tty_len = (u32)(n - 1) & (TTY_CAP - 1);
	}
	b->cgroup_len = 0;
	const char *cg = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, name);
	if (cg) {
		long n = bpf_probe_read_kernel_str(rec->cgroup, CGROUP_CAP, cg);
		if (n > 1)
			b->cgroup_len = (u32)(n - 1) & (CGROUP_CAP - 1);
	}

	u32 exe_len = b->exe_len & (PATH_CAP - 1);
	u32 cwd_len = b->cwd_len & (PATH_CAP - 1);
	u32 env_len = b->env_len & (2 * ENV_CAP - 1);
	u32 tty_len = b->tty_len & (TTY_CAP - 1);
	u32 cg_len = b->cgroup_len & (CGROUP_CAP - 1);
	u32 size = sizeof(struct sample_hdr) + sizeof(struct exec_body) + exe_len + cwd_len + head +
		   tail + env_len + tty_len + cg_len;
	struct bpf_dynptr out;
	if (bpf_ringbuf_reserve_dynptr(&events, size, 0, &out)) {
		bpf_ringbuf_discard_dynptr(&out, 0);
		count(&drops, KIND_EXEC);
		return 0;
	}
	u32 at = 0;
	bpf_dynptr_write(&out, at, rec, sizeof(struct sample_hdr) + sizeof(struct exec_body), 0);
	at += sizeof(struct sample_hdr) + sizeof(struct exec_body);
	exe_off &= (PATH_CAP - 1);
	cwd_off &= (PATH_CAP - 1);
	if (exe_len)
		bpf_dynptr_write(&out, at, rec->exe + exe_off, exe_len, 0);
	at += exe_len;
	if (cwd_len)
		bpf_dynptr_write(&out, at, rec->cwd + cwd_off, cwd_len, 0);
	at += cwd_len;
	if (head && head <= ARGV_HEAD_CAP)
		bpf_dynptr_write(&out, at, rec->head, head, 0);
	at += head;
	if (tail && tail <= ARGV_TAIL_CAP)
		bpf_dynptr_write(&out, at, rec->tail, tail, 0);
	at += tail;
	if (env_len && env_len <= ENV_CAP)
		bpf_dynptr_write(&out, at, rec->env, env_len, 0);
	at += env_len;
	if (tty_len)
		bpf_dynptr_write(&out, at, rec->tty, tty_len, 0);
	at += tty_len;
	if (cg_len)
		bpf_dynptr_write(&out, at, rec->cgroup, cg_len, 0);
	bpf_ringbuf_submit_dynptr(&out, 0);
	return 0;
}

/* ---- fork and exit ----------------------------------------------------------------------- */

struct fork_rec {
	struct sample_hdr h;
	struct fork_body b;
};

SEC("tp_btf/sched_process_fork")
int BPF_PROG(nightjar_fork, struct task_struct *parent, struct task_struct *child)
{
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a new thread, not a new process */
	u32 tgid = BPF_CORE_READ(parent, tgid);
	if (is_muted(tgid))
		return 0;
	struct fork_rec rec;
	fill_hdr(&rec.h, KIND_FORK, parent);
	rec.b.child_pid = BPF_CORE_READ(child, tgid);
	rec.b.reserved = 0;
	rec.b.child_start_boot_ns = BPF_CORE_READ(child, start_boottime);
	output(&rec, sizeof(rec), KIND_FORK);
	return 0;
}

struct exit_rec {
	struct sample_hdr h;
	struct exit_body b;
};

SEC("tp_btf/sched_process_exit")
int BPF_PROG(nightjar_exit, struct task_struct *task)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);
	if (BPF_CORE_READ(sig, live.counter) != 0)
		return 0; /* other threads of the process live on */
	u32 tgid = BPF_CORE_READ(task, tgid);
	if (is_muted(tgid))
		return 0;
	struct exit_rec rec;
	fill_hdr(&rec.h, KIND_EXIT, task);
	rec.b.exit_code = BPF_CORE_READ(task, exit_code);
	rec.b.reserved = 0;
	output(&rec, sizeof(rec), KIND_EXIT);
	return 0;
}

/* ---- file -------------------------------------------------------------------------------- */

/* Lowercases ASCII letters of the NUL-terminated `s` (at most `cap` bytes) in place. For
 * short strings only: long ones go through bpf_loop (below), which the verifier checks once
 * instead of once per iteration. */
static __always_inline void lower(char *s, u32 cap)
{
	for (u32 i = 0; i < cap; i++) {
		char c = s[i];
		if (c == 0)
			break;
		if (c >= 'A' && c <= 'Z')
			s[i] = c + ('a' - 'A');
	}
}

static __always_inline struct file_scratch *scratch_of_cpu(void)
{
	u32 zero = 0;
	return bpf_map_lookup_elem(&file_scratch, &zero);
}

static __always_inline void lower_byte(char *c)
{
	if (*c >= 'A' && *c <= 'Z')
		*c += 'a' - 'A';
}

static long lower_lpm_cb(u32 i, void *ctx)
{
	struct file_scratch *fs = scratch_of_cpu();
	if (!fs)
		return 1;
	lower_byte(&fs->lpm.data[i & (LPM_CAP - 1)]);
	return 0;
}

/* Lowercases the name and finds its last dot (`*dot`, -1 for none). */
struct name_scan {
	int dot;
};

static long name_scan_cb(u32 i, void *ctx)
{
	struct name_scan *ns = ctx;
	struct file_scratch *fs = scratch_of_cpu();
	if (!fs)
		return 1;
	char *c = &fs->name[i & (NAME_CAP - 1)];
	if (*c == 0)
		return 1;
	lower_byte(c);
	if (*c == '.' && i > 0)
		ns->dot = i;
	return 0;
}

/* Where the last component of a path string starts (in `path` or `orig`). */
struct rel_scan {
	u32 orig;
	u32 start;
	u32 len;
	u32 name_off;
};

static long rel_scan_cb(u32 i, void *ctx)
{
	struct rel_scan *rs = ctx;
	struct file_scratch *fs = scratch_of_cpu();
	if (!fs)
		return 1;
	u32 j = rs->start + i;
	if (j >= rs->len)
		return 1;
	char c = rs->orig ? fs->orig.rel[j & (PATH_CAP - 1)] : fs->path.rel[j & (PATH_CAP - 1)];
	if (c == '/')
		rs->name_off = j + 1;
	return 0;
}

/* Scans the lowercased path in fs->lpm for a loaded component or text. */
struct pat_scan {
	u32 len;
	u32 start;
	u32 hit;
};

static long pat_scan_cb(u32 i, void *ctx)
{
	struct pat_scan *ps = ctx;
	u32 zero = 0;
	struct file_scratch *fs = bpf_map_lookup_elem(&file_scratch, &zero);
	struct file_patterns *pat = bpf_map_lookup_elem(&patterns, &zero);
	if (!fs || !pat || i >= ps->len)
		return 1;
	const char *p = fs->lpm.data;
	char c = p[i & (LPM_CAP - 1)];
	/* Text inside the path: eight bytes at a time, the rest of the buffer masked off. */
	for (u32 k = 0; k < PAT_CONTAINS; k++) {
		if (k >= pat->n_contains)
			break;
		u32 len = pat->contains_len[k];
		u64 x = *(const u64 *)&p[i & (LPM_CAP - 1)];
		u64 y = *(const u64 *)&pat->contains[k][0];
		if (len < 8) {
			u64 mask = (1ULL << ((len & 7) * 8)) - 1;
			x &= mask;
			y &= mask;
		}
		if (x != y)
			continue;
		if (len > 8) {
			u32 rest = (len - 8) & 7;
			u64 x2 = *(const u64 *)&p[(i & (LPM_CAP - 1)) + 8];
			u64 y2 = *(const u64 *)&pat->contains[k][8];
			if (len < 16) {
				u64 mask = (1ULL << (rest * 8)) - 1;
				x2 &= mask;
				y2 &= mask;
			}
			if (x2 != y2)
				continue;
		}
		ps->hit = 1;
		return 1;
	}
	/* Whole components, at each '/' and at the end. */
	if (!pat->components)
		return 0;
	bool end = i + 1 >= ps->len;
	if (c != '/' && !end)
		return 0;
	u32 stop = c == '/' ? i : i + 1;
	u32 start = ps->start;
	ps->start = i + 1;
	u32 len = stop > start ? stop - start : 0;
	if (len == 0 || len >= COMM_CAP)
		return 0;
	char key[COMM_CAP] = {};
	if (bpf_probe_read_kernel(key, BOUND(len, COMM_CAP - 1), &p[start & (LPM_CAP - 1)]))
		return 0;
	if (bpf_map_lookup_elem(&components, key)) {
		ps->hit = 1;
		return 1;
	}
	return 0;
}

/* Whether the loaded components, texts or process name prefixes admit the file event whose
 * lowercased path (its first n bytes; `whole` when that is all of it) is in fs->lpm. A global
 * function: the verifier checks it once. */
__attribute__((noinline)) u32 patterns_admit(u32 n, u32 whole)
{
	u32 zero = 0;
	struct file_scratch *fs = bpf_map_lookup_elem(&file_scratch, &zero);
	struct file_patterns *pat = bpf_map_lookup_elem(&patterns, &zero);
	if (!fs || !pat)
		return 0;
	u64 c0 = *(const u64 *)&fs->comm[0];
	u64 c1 = *(const u64 *)&fs->comm[8];
	for (u32 k = 0; k < PAT_COMM_PREFIXES; k++) {
		if (k >= pat->n_comm_prefixes)
			break;
		u32 len = pat->comm_prefix_len[k] & 15;
		u64 p0 = *(const u64 *)&pat->comm_prefix[k][0];
		u64 p1 = *(const u64 *)&pat->comm_prefix[k][8];
		u64 m0 = len >= 8 ? ~0ULL : (1ULL << (len * 8)) - 1;
		u64 m1 = len <= 8 ? 0 : (1ULL << ((len - 8) * 8)) - 1;
		if ((c0 & m0) == (p0 & m0) && (c1 & m1) == (p1 & m1))
			return 1;
	}
	if (!pat->components && !pat->n_contains)
		return 0;
	/* Part of the path was not read: admit it, never miss. */
	if (!whole)
		return 1;
	struct pat_scan ps = { .len = n > LPM_CAP ? LPM_CAP : n, .start = 0, .hit = 0 };
	bpf_loop(LPM_CAP, pat_scan_cb, &ps, 0);
	return ps.hit;
}

static __always_inline bool admitted_exact(struct file_scratch *fs, struct file_path *fp,
					   const unsigned char *name, u32 *scanned, u32 *whole);

/* Whether a file event on `fp` by the current task passes the filters built from the loaded
 * rules. `name` is the file's name when the caller has it from a dentry; otherwise it is the
 * last component of the path string. */
static __always_inline bool admitted(struct file_scratch *fs, struct file_path *fp,
				     const unsigned char *name)
{
	if (files_all)
		return true;
	u32 n = 0, whole = 0;
	if (admitted_exact(fs, fp, name, &n, &whole))
		return true;
	return file_patterns_on && patterns_admit(n, whole);
}

/* Prefixes, names, extensions and whole process names; `*scanned` and `*whole` say how
 * much of the path fs->lpm holds, lowercased. */
static __always_inline bool admitted_exact(struct file_scratch *fs, struct file_path *fp,
					   const unsigned char *name, u32 *scanned, u32 *whole)
{
	if (bpf_map_lookup_elem(&comms, fs->comm))
		return true;

	/* The path's first LPM_CAP bytes, lowercased. Bytes past the path are read too but
	 * ignored: the trie compares prefixlen bits only. */
	u32 off = fp->base_off & (PATH_CAP - 1);
	u32 blen = fp->base_len < LPM_CAP ? fp->base_len : LPM_CAP;
	u32 n = blen;
	if (blen)
		bpf_probe_read_kernel(fs->lpm.data, LPM_CAP, fp->base + off);
	if (fp->rel_len && blen < LPM_CAP) {
		u32 at = blen;
		if (blen) {
			fs->lpm.data[at & (LPM_CAP - 1)] = '/';
			at++;
		}
		at &= (LPM_CAP - 1);
		bpf_probe_read_kernel(fs->lpm.data + at, LPM_CAP, fp->rel);
		n = at + fp->rel_len;
	}
	u32 full = fp->base_len + (fp->base_len && fp->rel_len ? 1 : 0) + fp->rel_len;
	*whole = full <= LPM_CAP;
	if (n > LPM_CAP)
		n = LPM_CAP;
	*scanned = n;
	fs->lpm_spill[0] = 0;
	bpf_loop(n, lower_lpm_cb, NULL, 0);
	fs->lpm.prefixlen = n * 8;
	if (bpf_map_lookup_elem(&prefixes, &fs->lpm))
		return true;

	__builtin_memset(fs->name, 0, NAME_CAP);
	if (name)
		bpf_probe_read_kernel_str(fs->name, NAME_CAP, name);
	else if (fp->rel_len)
		bpf_probe_read_kernel_str(fs->name, NAME_CAP, fp->rel + (fp->name_off & (PATH_CAP - 1)));
	struct name_scan ns = { .dot = -1 };
	bpf_loop(NAME_CAP, name_scan_cb, &ns, 0);
	if (bpf_map_lookup_elem(&names, fs->name))
		return true;
	int dot = ns.dot;
	if (dot < 1 || dot >= NAME_CAP)
		return false;
	__builtin_memset(fs->ext, 0, COMM_CAP);
	for (int i = 0; i < COMM_CAP - 1; i++) {
		int j = dot + 1 + i;
		if (j >= NAME_CAP)
			break;
		char c = fs->name[j & (NAME_CAP - 1)];
		if (c == 0)
			break;
		fs->ext[i] = c;
		if (i == COMM_CAP - 2 && fs->name[(j + 1) & (NAME_CAP - 1)] != 0)
			return true; /* longer than any extension kept: admit, never miss */
	}
	return fs->ext[0] && bpf_map_lookup_elem(&extensions, fs->ext);
}

static __always_inline struct file_scratch *file_begin(struct task_struct *task)
{
	u32 zero = 0;
	struct file_scratch *fs = bpf_map_lookup_elem(&file_scratch, &zero);
	if (!fs)
		return NULL;
	fill_hdr(&fs->rec.h, KIND_FILE, task);
	bpf_get_current_comm(fs->rec.b.comm, sizeof(fs->rec.b.comm));
	__builtin_memcpy(fs->comm, fs->rec.b.comm, COMM_CAP);
	lower(fs->comm, COMM_CAP);
	fs->rec.b.path_len = 0;
	fs->rec.b.orig_len = 0;
	fs->path.base_len = 0;
	fs->path.rel_len = 0;
	fs->orig.base_len = 0;
	fs->orig.rel_len = 0;
	return fs;
}

/* Fills `fp` with the path of an open file. */
static __always_inline bool file_path_of(struct file *file, struct file_path *fp, u32 *flags)
{
	struct path p;
	if (bpf_probe_read_kernel(&p, sizeof(p), &file->f_path))
		return false;
	u32 off = walk_path(p.dentry, p.mnt, fp->base, flags);
	fp->base_off = off;
	fp->base_len = (PATH_CAP - off) & (PATH_CAP - 1);
	fp->rel_len = 0;
	return fp->base_len > 0;
}

/* The file behind descriptor `fd` of the current task. */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (u64)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd & 0xffffff]);
	return f;
}

/* Fills `fp` from a path string a system call was given, relative to `dirfd` (or the
 * working directory). */
static __always_inline bool file_path_at(struct task_struct *task, long dirfd, const char *upath,
					 struct file_path *fp, u32 orig, u32 *flags)
{
	long n = bpf_probe_read_user_str(fp->rel, PATH_CAP, upath);
	if (n <= 1)
		return false;
	u32 len = (u32)(n - 1) & (PATH_CAP - 1);
	if (n == PATH_CAP)
		*flags |= F_PATH_TRUNCATED;
	fp->rel_len = len;
	/* The name: what follows the last `/` within the string's last NAME_CAP bytes. */
	struct rel_scan rs = {
		.orig = orig,
		.start = len > NAME_CAP ? len - NAME_CAP : 0,
		.len = len,
	};
	rs.name_off = rs.start;
	bpf_loop(NAME_CAP, rel_scan_cb, &rs, 0);
	fp->name_off = rs.name_off;
	fp->base_len = 0;
	fp->base_off = PATH_CAP;
	if (fp->rel[0] == '/')
		return true;
	struct path p;
	if (dirfd == AT_FDCWD) {
		struct fs_struct *fsp = BPF_CORE_READ(task, fs);
		if (!fsp || bpf_probe_read_kernel(&p, sizeof(p), &fsp->pwd))
			return true;
	} else {
		struct file *dir = fd_file(task, dirfd);
		if (!dir || bpf_probe_read_kernel(&p, sizeof(p), &dir->f_path))
			return true;
	}
	u32 off = walk_path(p.dentry, p.mnt, fp->base, flags);
	fp->base_off = off;
	fp->base_len = (PATH_CAP - off) & (PATH_CAP - 1);
	/* "/" alone joins as "" so the result has one slash. */
	if (fp->base_len == 1 && fp->base[(PATH_CAP - 1) & (PATH_CAP - 1)] == '/')
		fp->base_len = 0;
	return true;
}

/* Bytes `fp` takes in a sample. */
static __always_inline u32 path_size(struct file_path *fp)
{
	u32 b = fp->base_len & (PATH_CAP - 1);
	u32 r = fp->rel_len & (PATH_CAP - 1);
	return b + r + ((b && r) ? 1 : 0);
}

static __always_inline u32 write_path(struct bpf_dynptr *out, u32 at, struct file_path *fp)
{
	u32 b = fp->base_len & (PATH_CAP - 1);
	u32 r = fp->rel_len & (PATH_CAP - 1);
	u32 off = fp->base_off & (PATH_CAP - 1);
	if (b) {
		bpf_dynptr_write(out, at, fp->base + off, b, 0);
		at += b;
	}
	if (b && r) {
		char slash = '/';
		bpf_dynptr_write(out, at, &slash, 1, 0);
		at += 1;
	}
	if (r) {
		bpf_dynptr_write(out, at, fp->rel, r, 0);
		at += r;
	}
	return at;
}

static __always_inline void file_emit(struct file_scratch *fs, u32 action)
{
	fs->rec.b.action = action;
	u32 plen = path_size(&fs->path);
	u32 olen = action == ACTION_RENAME ? path_size(&fs->orig) : 0;
	fs->rec.b.path_len = plen;
	fs->rec.b.orig_len = olen;
	u32 size = sizeof(struct sample_hdr) + sizeof(struct file_body) + plen + olen;
	struct bpf_dynptr out;
	if (bpf_ringbuf_reserve_dynptr(&events, size, 0, &out)) {
		bpf_ringbuf_discard_dynptr(&out, 0);
		count(&drops, KIND_FILE);
		return;
	}
	u32 at = sizeof(struct sample_hdr) + sizeof(struct file_body);
	bpf_dynptr_write(&out, 0, &fs->rec, at, 0);
	at = write_path(&out, at, &fs->path);
	if (olen)
		write_path(&out, at, &fs->orig);
	bpf_ringbuf_submit_dynptr(&out, 0);
}

/* The system call's arguments (x86-64: di, si, dx, r10, r8). An `int` argument (a descriptor)
 * is only the register's low 32 bits: cast before comparing. */
#define ARG(regs, n) BPF_CORE_READ(regs, n)

SEC("tp_btf/sys_enter")
int BPF_PROG(nightjar_sys_enter, struct pt_regs *regs, long id)
{
	if (id != NR_write && id != NR_pwrite64 && id != NR_writev && id != NR_pwritev &&
	    id != NR_pwritev2 && id != NR_ftruncate && id != NR_unlink && id != NR_unlinkat &&
	    id != NR_rename && id != NR_renameat && id != NR_renameat2 && id != NR_close &&
	    id != NR_open && id != NR_openat && id != NR_openat2 && id != NR_creat)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	u32 tgid = task->tgid;
	if (is_muted(tgid))
		return 0;
	u32 tid = task->pid;

	if (id == NR_open || id == NR_openat || id == NR_openat2 || id == NR_creat) {
		u64 flags = 0;
		if (id == NR_open)
			flags = ARG(regs, si);
		else if (id == NR_openat)
			flags = ARG(regs, dx);
		else if (id == NR_openat2) {
			struct open_how *how = (void *)ARG(regs, dx);
			bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
		} else
			flags = O_CREAT;
		if (flags & O_CREAT) {
			u8 one = 1;
			bpf_map_update_elem(&pending_creates, &tid, &one, BPF_ANY);
		}
		return 0;
	}

	if (id == NR_close) {
		struct file *file = fd_file(task, (int)ARG(regs, di));
		if (file) {
			u64 key = (u64)file;
			bpf_map_delete_elem(&written, &key);
		}
		return 0;
	}

	if (id == NR_write || id == NR_pwrite64 || id == NR_writev || id == NR_pwritev ||
	    id == NR_pwritev2 || id == NR_ftruncate) {
		struct file *file = fd_file(task, (int)ARG(regs, di));
		if (!file)
			return 0;
		struct inode *inode = BPF_CORE_READ(file, f_inode);
		if (!inode || (BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFREG)
			return 0;
		u64 key = (u64)file;
		u64 now = bpf_ktime_get_boot_ns();
		u64 *when = bpf_map_lookup_elem(&written, &key);
		if (when && now - *when < REWRITE_NS)
			return 0;
		bpf_map_update_elem(&written, &key, &now, BPF_ANY);
		struct file_scratch *fs = file_begin(task);
		if (!fs || !file_path_of(file, &fs->path, &fs->rec.h.flags))
			return 0;
		const unsigned char *name = BPF_CORE_READ(file, f_path.dentry, d_name.name);
		if (!admitted(fs, &fs->path, name)) {
			count(&filtered, KIND_FILE);
			return 0;
		}
		file_emit(fs, ACTION_MODIFICATION);
		return 0;
	}

	struct file_scratch *fs = file_begin(task);
	if (!fs)
		return 0;
	u32 *fl = &fs->rec.h.flags;
	if (id == NR_unlink || id == NR_unlinkat) {
		long dirfd = AT_FDCWD;
		const char *p;
		if (id == NR_unlink) {
			p = (const char *)ARG(regs, di);
		} else {
			dirfd = (int)ARG(regs, di);
			p = (const char *)ARG(regs, si);
			if (ARG(regs, dx) & AT_REMOVEDIR)
				return 0;
		}
		if (!file_path_at(task, dirfd, p, &fs->path, 0, fl))
			return 0;
		if (!admitted(fs, &fs->path, NULL)) {
			count(&filtered, KIND_FILE);
			return 0;
		}
		fs->rec.b.action = ACTION_DELETION;
	} else {
		long olddir = AT_FDCWD, newdir = AT_FDCWD;
		const char *op, *np;
		if (id == NR_rename) {
			op = (const char *)ARG(regs, di);
			np = (const char *)ARG(regs, si);
		} else {
			olddir = (int)ARG(regs, di);
			op = (const char *)ARG(regs, si);
			newdir = (int)ARG(regs, dx);
			np = (const char *)ARG(regs, r10);
		}
		if (!file_path_at(task, newdir, np, &fs->path, 0, fl) ||
		    !file_path_at(task, olddir, op, &fs->orig, 1, fl))
			return 0;
		if (!admitted(fs, &fs->path, NULL) && !admitted(fs, &fs->orig, NULL)) {
			count(&filtered, KIND_FILE);
			return 0;
		}
		fs->rec.b.action = ACTION_RENAME;
	}
	bpf_map_update_elem(&pending_files, &tid, fs, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(nightjar_sys_exit, struct pt_regs *regs, long ret)
{
	long id = BPF_CORE_READ(regs, orig_ax);
	if (id != NR_unlink && id != NR_unlinkat && id != NR_rename && id != NR_renameat &&
	    id != NR_renameat2 && id != NR_open && id != NR_openat && id != NR_openat2 &&
	    id != NR_creat)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	u32 tid = task->pid;

	if (id == NR_open || id == NR_openat || id == NR_openat2 || id == NR_creat) {
		if (!bpf_map_lookup_elem(&pending_creates, &tid))
			return 0;
		bpf_map_delete_elem(&pending_creates, &tid);
		if (ret < 0)
			return 0;
		struct file *file = fd_file(task, ret);
		if (!file || !(BPF_CORE_READ(file, f_mode) & FMODE_CREATED))
			return 0;
		struct file_scratch *fs = file_begin(task);
		if (!fs || !file_path_of(file, &fs->path, &fs->rec.h.flags))
			return 0;
		const unsigned char *name = BPF_CORE_READ(file, f_path.dentry, d_name.name);
		if (!admitted(fs, &fs->path, name)) {
			count(&filtered, KIND_FILE);
			return 0;
		}
		file_emit(fs, ACTION_CREATION);
		return 0;
	}

	struct file_scratch *fs = bpf_map_lookup_elem(&pending_files, &tid);
	if (!fs)
		return 0;
	if (ret == 0) {
		/* The time of the event is when it completed. */
		fs->rec.h.time_boot_ns = bpf_ktime_get_boot_ns();
		file_emit(fs, fs->rec.b.action);
	}
	bpf_map_delete_elem(&pending_files, &tid);
	return 0;
}

/* ---- credentials and sessions ------------------------------------------------------------ */

/* x86-64 system call numbers of the calls that change ids or the session. */
#define NR_setuid 105
#define NR_setgid 106
#define NR_setsid 112
#define NR_setreuid 113
#define NR_setregid 114
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_setfsuid 122
#define NR_setfsgid 123

/* A thread's ids when it entered an id-changing system call. */
struct cred_ids {
	u32 uid, euid, suid, fsuid;
	u32 gid, egid, sgid, fsgid;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, struct cred_ids);
} cred_pending SEC(".maps");

struct cred_rec {
	struct sample_hdr h;
	struct cred_body b;
};

static __always_inline bool is_setid(long id)
{
	return id == NR_setuid || id == NR_setgid || id == NR_setreuid || id == NR_setregid ||
	       id == NR_setresuid || id == NR_setresgid || id == NR_setfsuid || id == NR_setfsgid;
}

static __always_inline void read_ids(struct task_struct *task, struct cred_ids *ids)
{
	const struct cred *c = BPF_CORE_READ(task, real_cred);
	ids->uid = BPF_CORE_READ(c, uid.val);
	ids->euid = BPF_CORE_READ(c, euid.val);
	ids->suid = BPF_CORE_READ(c, suid.val);
	ids->fsuid = BPF_CORE_READ(c, fsuid.val);
	ids->gid = BPF_CORE_READ(c, gid.val);
	ids->egid = BPF_CORE_READ(c, egid.val);
	ids->sgid = BPF_CORE_READ(c, sgid.val);
	ids->fsgid = BPF_CORE_READ(c, fsgid.val);
}

/* One change of `task`'s ids from `old` to `now` (the header gets `now`), or of its session
 * (`old` NULL). */
static __always_inline void cred_emit(struct task_struct *task, u32 change,
				      const struct cred_ids *old, const struct cred_ids *now)
{
	struct cred_rec rec;
	__builtin_memset(&rec, 0, sizeof(rec));
	fill_hdr(&rec.h, KIND_CRED, task);
	rec.b.change = change;
	struct signal_struct *sig = BPF_CORE_READ(task, signal);
	rec.b.sid = BPF_CORE_READ(sig, pids[PIDTYPE_SID], numbers[0].nr);
	if (old) {
		rec.h.uid = now->uid;
		rec.h.euid = now->euid;
		rec.h.gid = now->gid;
		rec.h.egid = now->egid;
		rec.b.new_suid = now->suid;
		rec.b.new_sgid = now->sgid;
		rec.b.old_uid = old->uid;
		rec.b.old_euid = old->euid;
		rec.b.old_suid = old->suid;
		rec.b.old_gid = old->gid;
		rec.b.old_egid = old->egid;
		rec.b.old_sgid = old->sgid;
	}
	output(&rec, sizeof(rec), KIND_CRED);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(nightjar_cred_enter, struct pt_regs *regs, long id)
{
	if (!is_setid(id))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (is_muted(task->tgid))
		return 0;
	u32 tid = task->pid;
	struct cred_ids ids;
	read_ids(task, &ids);
	bpf_map_update_elem(&cred_pending, &tid, &ids, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(nightjar_cred_exit, struct pt_regs *regs, long ret)
{
	long id = BPF_CORE_READ(regs, orig_ax);
	if (id != NR_setsid && !is_setid(id))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (id == NR_setsid) {
		if (ret >= 0 && !is_muted(task->tgid))
			cred_emit(task, CHANGE_SID, NULL, NULL);
		return 0;
	}
	u32 tid = task->pid;
	struct cred_ids *entered = bpf_map_lookup_elem(&cred_pending, &tid);
	if (!entered)
		return 0;
	struct cred_ids old = *entered;
	bpf_map_delete_elem(&cred_pending, &tid);
	/* Compared rather than judged by the return value: setfsuid() and setfsgid() return
	 * the previous id whether or not they changed it. */
	struct cred_ids now;
	read_ids(task, &now);
	if (now.uid != old.uid || now.euid != old.euid || now.suid != old.suid ||
	    now.fsuid != old.fsuid)
		cred_emit(task, CHANGE_UID, &old, &now);
	if (now.gid != old.gid || now.egid != old.egid || now.sgid != old.sgid ||
	    now.fsgid != old.fsgid)
		cred_emit(task, CHANGE_GID, &old, &now);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
