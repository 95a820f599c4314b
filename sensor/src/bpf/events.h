/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The samples the probes write to the `events` BPF ring buffer, shared with
 * capture/ebpf/sample.rs (which decodes them): little-endian, no padding, every length
 * checked by the reader against the sample's real size.
 *
 * Every sample starts with struct sample_hdr; `kind` says what follows:
 *   EXEC: struct exec_body | exe | cwd | argv head | argv tail | env | tty | cgroup leaf
 *   FORK: struct fork_body
 *   EXIT: struct exit_body
 *   FILE: struct file_body | path | original path
 *   CRED: struct cred_body (the header's ids are those after the change)
 */
#ifndef NIGHTJAR_EVENTS_H
#define NIGHTJAR_EVENTS_H

#define KIND_EXEC 1
#define KIND_FORK 2
#define KIND_EXIT 3
#define KIND_FILE 4
#define KIND_CRED 5
#define KINDS 6

#define PATH_CAP 4096
#define ARGV_HEAD_CAP 12288
#define ARGV_TAIL_CAP 4096
#define ENV_CAP 4096
#define TTY_CAP 64
#define CGROUP_CAP 128
#define NAME_CAP 256
#define COMM_CAP 16
#define LPM_CAP 256

/* sample_hdr.flags */
#define F_ARGS_TRUNCATED 0x1    /* argv longer than head + tail: the middle is gone */
#define F_PATH_TRUNCATED 0x2    /* an executable or file path was cut */
#define F_ARGS_UNREADABLE 0x4   /* argv pages could not be read */
#define F_NO_LOGINUID 0x8       /* no audit login uid in this kernel */
#define F_EXE_RESOLVED 0x10     /* exe is the canonical path of the image, not bprm->filename */
#define F_CWD 0x20              /* cwd is present */
#define F_ENV_TRUNCATED 0x40    /* the environment was longer than ENV_CAP */
#define F_CWD_TRUNCATED 0x80
#define F_BLOCKED 0x100         /* a blocking rule matched: SIGKILL was sent */
#define F_BLOCK_FAILED 0x200    /* a blocking rule matched but the signal could not be sent */

/*
 * Blocking rules (prevention), compiled by user space from the rule engine: up to BLOCK_MAX
 * conjunctions ("blockers") of exact tests. Each value a blocker tests is a key of a hash map
 * whose value has the blocker's bit set, so deciding costs a few lookups and no loop over the
 * blockers; argv is scanned once, only when a blocker's program matched.
 *
 * Two generations of the set are loaded side by side so that user space can swap sets live:
 * `block_conf` holds one conf per generation, every key carries its generation in
 * `kind` (BK_GEN_SHIFT), and `block_live` holds the epoch whose low bit is the live
 * generation. User space loads the idle generation whole, then bumps the epoch; an exec that
 * saw the epoch change while it was being checked is let through (fail open, counted), so
 * none is judged half by the old set and half by the new.
 */
#define BLOCK_MAX 32    /* blockers */
#define BLOCK_VAL 64    /* a name or argument value, NUL padded */
#define BLOCK_EXE 256   /* an executable path, NUL padded */
#define BLOCK_ARGS 4    /* argument values one blocker requires */

/* block_key.kind */
#define BK_NAME 0
#define BK_NAME_CI 1
#define BK_PARENT 2
#define BK_PARENT_CI 3
#define BK_ARG 4
#define BK_ARG_CI 5
#define BK_EXE 6
#define BK_EXE_CI 7
#define BK_GEN_SHIFT 8 /* kind |= generation << BK_GEN_SHIFT */

/* block_stats slots */
#define BLOCK_STAT_BLOCKED 0
#define BLOCK_STAT_FAILED_OPEN 1

struct block_conf {
	u32 count;       /* blockers loaded: bits 0..count-1 */
	u32 kinds;       /* bit BK_*: some key of that kind is loaded */
	u32 need_name;   /* bit k: blocker k tests process.name */
	u32 need_exe;    /* ... process.executable */
	u32 need_parent; /* ... process.parent.name */
	u32 need_args;   /* ... argument values */
	u64 arg_need[2]; /* bit 4k+j (over the two words): blocker k needs its value j */
	u16 rule[BLOCK_MAX]; /* index + 1 of blocker k's rule */
};

struct block_key {
	u32 kind;
	char s[BLOCK_VAL];
};

struct block_exe_key {
	u32 kind;
	char s[BLOCK_EXE];
};

/* What a key stands for: bit k of `blockers` (names, executables), or bit 4k+j of `args`. */
struct block_val {
	u64 bits[2];
};

/* File filter entries the kernel tests besides prefixes, names and extensions: whole path
 * components (a hash of COMM_CAP keys), text inside the path and process name prefixes. */
#define PAT_CONTAINS 4
#define PAT_COMM_PREFIXES 8
#define PAT_TEXT 16

struct file_patterns {
	u32 components;       /* some component is loaded */
	u32 n_contains;
	u32 n_comm_prefixes;
	u32 pad;
	u32 contains_len[PAT_CONTAINS];
	u32 comm_prefix_len[PAT_COMM_PREFIXES];
	char contains[PAT_CONTAINS][PAT_TEXT];          /* lowercase */
	char comm_prefix[PAT_COMM_PREFIXES][PAT_TEXT];  /* lowercase */
};

/* file_body.action, as proto's FileAction */
#define ACTION_CREATION 1
#define ACTION_MODIFICATION 2
#define ACTION_RENAME 3
#define ACTION_DELETION 4

struct sample_hdr {
	u32 kind;
	u32 flags;
	u64 time_boot_ns;
	u64 start_boot_ns; /* the process's start (CLOCK_BOOTTIME) */
	u32 pid;           /* tgid */
	u32 ppid;
	u32 uid;
	u32 euid;
	u32 gid;
	u32 egid;
};

struct exec_body {
	u32 auid;
	u32 audit_session;
	u32 sid;          /* POSIX session id: the session leader's pid */
	u32 pgid;         /* process group id: the group leader's pid */
	u32 ns_pid;       /* pid in its own pid namespace */
	u32 pidns_level;  /* 0: the initial pid namespace */
	u32 argc;
	u16 exe_len;
	u16 cwd_len;
	u16 head_len;
	u16 tail_len;
	u16 env_len;
	u16 tty_len;
	u16 cgroup_len;
	u16 block_rule;   /* index + 1 of the blocking rule that matched; 0 for none */
};

struct fork_body {
	u32 child_pid;
	u32 reserved;
	u64 child_start_boot_ns;
};

struct exit_body {
	s32 exit_code; /* the wait(2) status word */
	u32 reserved;
};

/* cred_body.change, as proto's CredChange */
#define CHANGE_UID 1
#define CHANGE_GID 2
#define CHANGE_SID 3

struct cred_body {
	u32 change;
	u32 old_uid;
	u32 old_euid;
	u32 old_suid;
	u32 old_gid;
	u32 old_egid;
	u32 old_sgid;
	u32 new_suid;
	u32 new_sgid;
	u32 sid;          /* the POSIX session id after the change */
};

struct file_body {
	u32 action;
	u16 path_len;
	u16 orig_len;
	char comm[COMM_CAP];
};

#endif
