// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Nightjar's Linux exec probe.
 *
 * Attached at tp_btf/sched_process_exec: it fires once per successful execve, after the new
 * image is mapped and its argv copied to the new stack, in the context of the process itself.
 * Being a BTF-typed raw tracepoint it needs no tracefs and reads the kernel structs directly
 * (CO-RE, see vmlinux_min.h).
 *
 * One record per exec goes to the `events` BPF ring buffer, sized to what it holds:
 *   struct exec_hdr | executable path (path_len bytes, no NUL) | argv block (args_len bytes)
 * The argv block is the raw mm->arg_start..arg_end range (arguments separated and ended by
 * NUL), read in one bpf_probe_read_user: at this tracepoint those pages were just written by
 * the kernel, so the read does not fault. Anything past ARGV_CAP is cut and flagged.
 *
 * The executable path is bprm->filename, the path handed to execve (absolute for anything a
 * shell found on PATH; as given otherwise). The d_path of the exe file would be canonical but
 * bpf_d_path is not allowed at this hook, and walking dentries by hand costs a bounded loop
 * per path component on every exec.
 *
 * The working directory is not captured (the event's cwd is absent, never guessed): like the
 * canonical exe path it needs a dentry walk, and reading /proc/PID/cwd afterwards races with
 * short-lived processes. argv is capped at ARGV_CAP (16 KiB) so a per-CPU scratch record stays
 * under the 32 KiB per-CPU value limit.
 *
 * When the ring buffer is full the record is dropped and `drops` counts it; the sensor reports
 * the count as loss. Processes whose tgid is in `muted` (the sensor, the agent) are skipped.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define PATH_CAP 4096
#define ARGV_CAP 16384

#define FLAG_ARGS_TRUNCATED 1
#define FLAG_PATH_TRUNCATED 2
#define FLAG_ARGS_UNREADABLE 4
#define FLAG_NO_LOGINUID 8

/* Layout shared with capture/ebpf/sample.rs: little-endian, no padding. */
struct exec_hdr {
	u64 time_boot_ns;
	u64 start_boot_ns;
	u32 pid;
	u32 ppid;
	u32 uid;
	u32 euid;
	u32 gid;
	u32 egid;
	u32 auid;
	u32 session_id;
	u32 flags;
	u32 path_len;
	u32 args_len;
	u32 reserved;
};

struct exec_rec {
	struct exec_hdr hdr;
	char data[PATH_CAP + ARGV_CAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct exec_rec);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u8);
} muted SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(nightjar_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	u32 zero = 0;
	u32 tgid = BPF_CORE_READ(task, tgid);
	if (bpf_map_lookup_elem(&muted, &tgid))
		return 0;

	struct exec_rec *rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return 0;
	struct exec_hdr *h = &rec->hdr;

	h->time_boot_ns = bpf_ktime_get_boot_ns();
	h->start_boot_ns = BPF_CORE_READ(task, start_boottime);
	h->pid = tgid;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = BPF_CORE_READ(task, cred, uid.val);
	h->euid = BPF_CORE_READ(task, cred, euid.val);
	h->gid = BPF_CORE_READ(task, cred, gid.val);
	h->egid = BPF_CORE_READ(task, cred, egid.val);
	h->flags = 0;
	h->reserved = 0;
	if (bpf_core_field_exists(task->loginuid)) {
		h->auid = BPF_CORE_READ(task, loginuid.val);
		h->session_id = BPF_CORE_READ(task, sessionid);
	} else {
		h->auid = 0;
		h->session_id = 0;
		h->flags |= FLAG_NO_LOGINUID;
	}

	const char *filename = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(rec->data, PATH_CAP, filename);
	u32 path_len = 0;
	if (n > 0) {
		/* n counts the NUL; a string of PATH_CAP - 1 bytes may have been cut. */
		path_len = (u32)(n - 1) & (PATH_CAP - 1);
		if (n == PATH_CAP)
			h->flags |= FLAG_PATH_TRUNCATED;
	}
	h->path_len = path_len;

	unsigned long arg_start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(task, mm, arg_end);
	u64 args_len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (args_len > ARGV_CAP) {
		args_len = ARGV_CAP;
		h->flags |= FLAG_ARGS_TRUNCATED;
	}
	/* Re-bound for the verifier: path_len <= PATH_CAP - 1, args_len <= ARGV_CAP. */
	args_len &= (2 * ARGV_CAP - 1);
	if (args_len > ARGV_CAP)
		args_len = 0;
	if (args_len && bpf_probe_read_user(rec->data + path_len, args_len, (const void *)arg_start)) {
		args_len = 0;
		h->flags |= FLAG_ARGS_UNREADABLE;
	}
	h->args_len = args_len;

	u64 size = sizeof(struct exec_hdr) + path_len + args_len;
	if (size > sizeof(struct exec_rec))
		return 0;
	if (bpf_ringbuf_output(&events, rec, size, 0)) {
		u64 *d = bpf_map_lookup_elem(&drops, &zero);
		if (d)
			__sync_fetch_and_add(d, 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
