/* Crash-safe file writes and small folder utilities (POSIX). */
#include "io/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *fs_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : malloc((size_t)n + 1);
    if (!s) {
        moe_error(MOE_ERR_NOMEM, "out of memory formatting a path");
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

moe_status fs_atomic_open(fs_atomic *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->path = fs_printf("%s", path);
    a->tmp = fs_printf("%s.tmp.%ld", path, (long)getpid());
    if (!a->path || !a->tmp) {
        fs_atomic_abort(a);
        return MOE_ERR_NOMEM;
    }
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        moe_status s = moe_error(MOE_ERR_IO,
                                 "cannot create %s: %s; check that the folder exists "
                                 "and is writable",
                                 a->tmp, strerror(e));
        fs_atomic_abort(a);
        return s;
    }
    return MOE_OK;
}

moe_status fs_atomic_write(fs_atomic *a, const void *data, size_t n) {
    if (n == 0) return MOE_OK;
    if (fwrite(data, 1, n, a->f) != n) {
        int e = errno;
        moe_status s = moe_error(MOE_ERR_IO,
                                 "cannot write %s: %s; the previous file (if any) "
                                 "is unchanged",
                                 a->path, strerror(e));
        fs_atomic_abort(a);
        return s;
    }
    return MOE_OK;
}

/* The folder part of a path ("." when none); malloc'd. */
static char *parent_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return fs_printf(".");
    if (slash == path) return fs_printf("/");
    return fs_printf("%.*s", (int)(slash - path), path);
}

moe_status fs_atomic_commit(fs_atomic *a) {
    int e = 0;
    if (fflush(a->f) != 0 || ferror(a->f)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(a->f)) != 0) e = errno;
    if (fclose(a->f) != 0 && !e) e = errno;
    a->f = NULL;
    if (!e && rename(a->tmp, a->path) != 0) e = errno;
    if (e) {
        moe_status s = moe_error(MOE_ERR_IO,
                                 "cannot write %s: %s; the previous file (if any) "
                                 "is unchanged",
                                 a->path, strerror(e));
        fs_atomic_abort(a);
        return s;
    }
    char *dir = parent_of(a->path);
    moe_status s = dir ? fs_sync_dir(dir) : MOE_ERR_NOMEM;
    free(dir);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    return s;
}

void fs_atomic_abort(fs_atomic *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

moe_status fs_write_file(const char *path, const void *data, size_t n) {
    fs_atomic a;
    moe_status s = fs_atomic_open(&a, path);
    if (s == MOE_OK) s = fs_atomic_write(&a, data, n);
    if (s == MOE_OK) s = fs_atomic_commit(&a);
    return s;
}

moe_status fs_read_file(const char *path, char **data, size_t *n, int *missing) {
    *data = NULL;
    if (n) *n = 0;
    if (missing) *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (missing) *missing = errno == ENOENT || errno == ENOTDIR;
        return moe_error(MOE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len < cap - 1) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf) return moe_error(MOE_ERR_NOMEM, "out of memory reading %s", path);
    if (err) {
        free(buf);
        return moe_error(MOE_ERR_IO, "cannot read %s: %s", path, strerror(err));
    }
    buf[len] = '\0';
    *data = buf;
    if (n) *n = len;
    return MOE_OK;
}

moe_status fs_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return moe_error(MOE_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
    /* some file systems refuse fsync on folders (EINVAL): nothing to do there */
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return moe_error(MOE_ERR_IO, "cannot sync folder %s: %s", dir, strerror(e));
    return MOE_OK;
}

moe_status fs_mkdir_p(const char *dir) {
    return fs_mkdir_p_mode(dir, 0755);
}

moe_status fs_mkdir_p_mode(const char *dir, unsigned mode) {
    if (!dir[0]) return moe_error(MOE_ERR_INVALID, "cannot create a folder with an empty name");
    char *p = fs_printf("%s", dir);
    if (!p) return MOE_ERR_NOMEM;
    moe_status s = MOE_OK;
    /* create each prefix ending before a '/', then the whole path */
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0') continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            s = moe_error(MOE_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
        } else if (!fs_is_dir(p)) {
            s = moe_error(MOE_ERR_IO, "cannot create folder %s: a file of that name is in the way",
                          p);
        }
        *c = saved;
        if (s != MOE_OK || saved == '\0') break;
    }
    free(p);
    return s;
}

int fs_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *child = fs_printf("%s/%s", path, e->d_name);
        if (!child || fs_remove_tree(child) != 0) rc = -1;
        free(child);
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int fs_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int fs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
