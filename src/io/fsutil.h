/* File-system helpers for crash-safe writes: temp file + fsync + rename,
 * directory sync, mkdir -p and recursive removal. Internal to libmoe. */
#ifndef MOE_IO_FSUTIL_H
#define MOE_IO_FSUTIL_H

#include "moe/core.h"

#include <stddef.h>
#include <stdio.h>

/* A file being written under a temporary name next to its final path. */
typedef struct fs_atomic {
    FILE *f;    /* open for writing */
    char *path; /* final path */
    char *tmp;  /* path.tmp.<pid> */
} fs_atomic;

/* Opens path.tmp.<pid> for writing. MOE_ERR_IO with strerror on failure. */
moe_status fs_atomic_open(fs_atomic *a, const char *path);
/* Writes n bytes; returns MOE_ERR_IO (and aborts: removes the temp file)
 * on a short write. */
moe_status fs_atomic_write(fs_atomic *a, const void *data, size_t n);
/* Flushes, fsyncs, closes and renames onto the final path, then syncs the
 * folder. On any failure the temp file is removed and the old file kept. */
moe_status fs_atomic_commit(fs_atomic *a);
/* Closes and removes the temp file (safe after a failed write or commit). */
void fs_atomic_abort(fs_atomic *a);

/* Writes a whole file atomically. */
moe_status fs_write_file(const char *path, const void *data, size_t n);
/* Reads a whole file into a malloc'd, NUL-terminated buffer. ENOENT gives
 * MOE_ERR_IO too; *missing (if not NULL) tells that case apart. */
moe_status fs_read_file(const char *path, char **data, size_t *n, int *missing);

/* fsync of a folder, so renames inside it are durable. */
moe_status fs_sync_dir(const char *dir);
/* Creates dir and its missing parents (mode 0755). */
moe_status fs_mkdir_p(const char *dir);
/* The same with the folders it creates made with mode (0700: private to
 * the user, as moe serve's job folders); existing ones are left as they are. */
moe_status fs_mkdir_p_mode(const char *dir, unsigned mode);
/* Removes a file or folder tree. 0, or -1 with errno; sets no message so it
 * can run in cleanup paths without hiding the first error. */
int fs_remove_tree(const char *path);
/* 1 if path exists (any kind), else 0. */
int fs_exists(const char *path);
/* 1 if path is a folder. */
int fs_is_dir(const char *path);
/* malloc'd printf; NULL (and MOE_ERR_NOMEM set) when out of memory. */
char *fs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
