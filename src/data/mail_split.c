/* The train/val/test split of the mail corpus, stratified by label and, as
 * nearly as that allows, by group. Within a label, mails are ordered by
 * group, then by the hash of their text, and dealt out evenly along that
 * order: mail j goes to val when round((j + 1) * val) exceeds round(j * val),
 * the rest to test the same way with the fraction test / (1 - val). So each
 * label's split sizes are within one mail of their exact shares, each
 * group's (a stretch of the order) within about one, and the split depends
 * on the texts only, not on the order of the files. */
#include "moe/mail.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int by_group_then_hash(const void *a, const void *b) {
    const moe_mail *x = *(const moe_mail *const *)a, *y = *(const moe_mail *const *)b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return strcmp(x->path ? x->path : "", y->path ? y->path : ""); /* no ties after dedup */
}

/* 1 when item i of an evenly dealt sequence is one of the fraction f */
static int dealt(size_t i, double f) {
    return llround((double)(i + 1) * f) > llround((double)i * f);
}

moe_status moe_mail_corpus_split(moe_mail_corpus *c, float val_fraction, float test_fraction) {
    if (!c) return moe_error(MOE_ERR_INVALID, "moe_mail_corpus_split: no corpus");
    if (!(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction <= 1))
        return moe_error(MOE_ERR_INVALID,
                         "split fractions val %g, test %g: each must be in [0, 1] and their sum "
                         "at most 1 (train gets the rest)",
                         val_fraction, test_fraction);
    moe_mail **order = malloc((c->n ? c->n : 1) * sizeof *order);
    if (!order) return moe_error(MOE_ERR_NOMEM, "moe_mail_corpus_split: out of memory");
    double val = val_fraction, test_of_rest = val < 1 ? test_fraction / (1 - val) : 0;
    for (int label = 0; label < MOE_MAIL_N_LABELS; label++) {
        size_t n = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->mails[i].label == (moe_mail_label)label) order[n++] = &c->mails[i];
        qsort(order, n, sizeof *order, by_group_then_hash);
        for (size_t j = 0, rest = 0; j < n; j++)
            if (dealt(j, val))
                order[j]->split = MOE_MAIL_VAL;
            else
                order[j]->split = dealt(rest++, test_of_rest) ? MOE_MAIL_TEST : MOE_MAIL_TRAIN;
    }
    free(order);
    c->val_fraction = val_fraction;
    c->test_fraction = test_fraction;
    return MOE_OK;
}
