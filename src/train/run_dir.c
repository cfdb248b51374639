/* Run directory housekeeping. */
#include "train/run_dir.h"

#include "io/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

moe_status run_dir_create(char *out, size_t cap, const char *parent, const char *name) {
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    moe_status st = fs_mkdir_p(parent);
    if (st != MOE_OK) return st;
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(out, cap, "%s/%s-%s", parent, name, stamp);
        else
            snprintf(out, cap, "%s/%s-%s-%d", parent, name, stamp, i);
        if (mkdir(out, 0755) == 0) return MOE_OK;
        if (errno != EEXIST)
            return moe_error(MOE_ERR_IO, "cannot create run directory %s: %s", out,
                             strerror(errno));
    }
    return moe_error(MOE_ERR_IO, "cannot create a run directory under %s", parent);
}

moe_status run_dir_write_text(const char *dir, const char *file, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return fs_write_file(path, text, strlen(text));
}

moe_status run_dir_link(const char *dir, const char *link, const char *target) {
    char tmp[1024], path[1024];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%d", dir, link, (int)getpid());
    snprintf(path, sizeof path, "%s/%s", dir, link);
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return moe_error(MOE_ERR_IO, "cannot point %s at %s: %s", path, target, strerror(errno));
    }
    return MOE_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void run_dir_prune_steps(const char *dir, int keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    char *names[4096] = {0};
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (strncmp(e->d_name, "step-", 5) == 0 && !strchr(e->d_name, '.'))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name); /* zero-padded: oldest first */
    for (int i = 0; i < n; i++) {
        if (i < n - keep) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            fs_remove_tree(path);
        }
        free(names[i]);
    }
}
