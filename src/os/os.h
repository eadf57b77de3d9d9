/*
 * os.h: the OS layer. ALL file access of NexusLite goes through these functions, so that tests
 * can inject failures (the N-th call of a kind fails with a chosen errno; short and torn writes)
 * and simulate power loss deterministically, in process.
 *
 * Status codes: NX_OK, NX_IO (errno in the message, with the path), NX_FULL (ENOSPC),
 * NX_NOTFOUND (ENOENT on open without create), NX_LOCKED (lock held elsewhere; message names the
 * pid written in the lock file), NX_READONLY (EROFS/EACCES on write).
 */
#ifndef NX_OS_H
#define NX_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct os_file os_file;

/* open flags */
#define OS_RDONLY 0x1u  /* open for reading only */
#define OS_CREATE 0x2u  /* create when missing */
#define OS_EXCL 0x4u    /* with OS_CREATE: fail with NX_EXISTS when present */
#define OS_MEMORY 0x8u  /* an in-memory file (":memory:" databases): never touches the disk */

/* ---- Files ---- */
int os_open(const char *path, unsigned flags, os_file **out);
int os_close(os_file *f); /* accepts NULL */
const char *os_path(const os_file *f);
/* Reads n bytes at off. *got receives the bytes read (< n only at end of file). */
int os_pread(os_file *f, void *buf, size_t n, uint64_t off, size_t *got);
/* Writes all n bytes at off (retries EINTR and short writes unless a fault is injected). */
int os_pwrite(os_file *f, const void *buf, size_t n, uint64_t off);
/* Makes the file's data durable (fdatasync). A failure must be treated as fatal by callers. */
int os_sync(os_file *f);
int os_truncate(os_file *f, uint64_t size);
int os_size(os_file *f, uint64_t *out);
/* Grows the file to size by writing zeros after its end (never shrinks it), so that later
 * overwrites of that range need no file-system metadata at fdatasync (unlike fallocate). */
int os_preallocate(os_file *f, uint64_t size);

/* ---- Names ---- */
int os_exists(const char *path, bool *out);
int os_rename(const char *from, const char *to);
int os_unlink(const char *path);
/* fsyncs the directory that holds `path` (so creates, renames and unlinks in it are durable). */
int os_sync_dir(const char *path);

/* ---- Process lock: exclusive, non-blocking, on an open file (fcntl/flock), writes our pid ---- */
int os_lock(os_file *f);
void os_unlock(os_file *f);

/* ---- Fault injection (tests) ---- */
typedef enum os_op {
  OS_OP_OPEN, OS_OP_READ, OS_OP_WRITE, OS_OP_SYNC, OS_OP_TRUNCATE,
  OS_OP_RENAME, OS_OP_UNLINK, OS_OP_DIRSYNC, OS_OP_LOCK, OS_OP_COUNT_,
  OS_OP_ANY = OS_OP_COUNT_
} os_op;
/* The n-th call (1 = next) of kind op fails with errno err. 0 disarms. */
void os_fault_fail_nth(os_op op, uint64_t n, int err);
/* The n-th write writes only its first `keep` bytes, then fails with EIO (short write). */
void os_fault_short_write_nth(uint64_t n, size_t keep);
/* Calls of each kind since the last os_fault_reset(). */
uint64_t os_fault_count(os_op op);
void os_fault_reset(void);
/* The n-th call of any kind from now (1 = next) kills the process with SIGKILL (crash children
 * of kill -9 tests die at a seeded point: in a commit, a checkpoint or recovery). 0 disarms. */
void os_fault_kill_at(uint64_t n);
/* A hook called at the start of every os_sync (group-commit tests park the first fsync there). */
void os_fault_set_sync_hook(void (*fn)(void *ctx), void *ctx);

/* ---- Simulated power loss (tests) ----
 * While enabled, the layer remembers for every file what was made durable (by os_sync) and which
 * creates, renames and unlinks were made durable (by os_sync_dir). os_sim_crash_after(n) makes the
 * n-th I/O call from now and every later one fail with EIO as if the machine had stopped; then
 * os_sim_power_loss() throws away what was not durable, as chosen by mode, and re-enables I/O.
 */
typedef enum os_crash_mode {
  OS_CRASH_DROP_ALL,  /* every unsynced write and namespace change is lost */
  OS_CRASH_RANDOM,    /* a seeded random subset of unsynced writes survives */
  OS_CRASH_TORN       /* like DROP_ALL, but the last unsynced write survives torn (a prefix of it) */
} os_crash_mode;
void os_sim_enable(bool on);
void os_sim_crash_after(uint64_t n);  /* 0 disarms */
bool os_sim_crashed(void);            /* has the armed crash fired? */
int os_sim_power_loss(os_crash_mode mode, uint64_t seed);
uint64_t os_sim_io_count(void);       /* I/O calls counted since enable (to size crash loops) */
/* Calls counted by the simulator are the mutating ones: open, write, sync, truncate/preallocate,
 * rename, unlink, directory sync (reads are not counted: a crash before a read equals a crash
 * before the next mutating call). A trace function, when set, sees each counted call before it
 * runs: its number since enable (1-based, what os_sim_crash_after counts), kind, path, offset and
 * length (tests classify crash points by phase with it). */
typedef void (*os_trace_fn)(void *ctx, uint64_t idx, os_op op, const char *path, uint64_t off, uint64_t n);
void os_sim_set_trace(os_trace_fn fn, void *ctx);

#endif
