/* Run directories: runs/<name>-<UTC timestamp>/ and what is written there. */
#ifndef MOE_TRAIN_RUN_DIR_H
#define MOE_TRAIN_RUN_DIR_H

#include "moe/core.h"

#include <stddef.h>

/* Creates <parent>/<name>-<YYYYmmddTHHMMSSZ> (suffix -2, -3... if taken). */
moe_status run_dir_create(char *out, size_t cap, const char *parent, const char *name);
/* Writes text to dir/file atomically (temp file, fsync, rename). */
moe_status run_dir_write_text(const char *dir, const char *file, const char *text);
/* Points dir/link at target (a name inside dir) atomically. */
moe_status run_dir_link(const char *dir, const char *link, const char *target);
/* Removes dir/step-* checkpoint folders except the newest keep. */
void run_dir_prune_steps(const char *dir, int keep);

#endif
