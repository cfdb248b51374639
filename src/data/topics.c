/* Topics of a corpus: labelled byte ranges that routing analysis compares.
 * For the King James Bible, the six traditional divisions, each starting at
 * its first book's "Book1:1 " line as `bible -f` prints it. */
#include "moe/data.h"

#include <stdio.h>
#include <string.h>

typedef struct division {
    const char *name;
    const char *first_verse; /* line prefix of the division's first verse */
} division;

static const division bible_divisions[] = {
    {"Law", "Ge1:1 "},       {"History", "Josh1:1 "},       {"Wisdom", "Job1:1 "},
    {"Prophets", "Isa1:1 "}, {"Gospels & Acts", "Mat1:1 "}, {"Epistles & Revelation", "Rom1:1 "},
};

/* Offset of the line starting with prefix, or (size_t)-1. */
static size_t find_line(const moe_corpus *c, const char *prefix) {
    size_t n = strlen(prefix);
    for (size_t i = 0; i + n <= c->n; i++) {
        if (i > 0 && c->bytes[i - 1] != '\n') continue;
        if (memcmp(c->bytes + i, prefix, n) == 0) return i;
    }
    return (size_t)-1;
}

moe_status moe_corpus_topics(const moe_corpus *c, const moe_data_config *cfg, moe_topics *t) {
    memset(t, 0, sizeof *t);
    if (strcmp(cfg->source, "bible-kjv") != 0) return MOE_OK;
    const int n = (int)(sizeof bible_divisions / sizeof bible_divisions[0]);
    for (int d = 0; d < n; d++) {
        size_t at = find_line(c, bible_divisions[d].first_verse);
        if (at == (size_t)-1 || (d > 0 && at <= t->begin[d - 1]))
            return moe_error(MOE_ERR_FORMAT,
                             "bible-kjv: no line starting with \"%s\" after the previous "
                             "division; is this the text `bible -f` prints?",
                             bible_divisions[d].first_verse);
        snprintf(t->name[d], sizeof t->name[d], "%s", bible_divisions[d].name);
        t->begin[d] = at;
        if (d > 0) t->end[d - 1] = at;
    }
    t->end[n - 1] = c->n;
    t->n = n;
    return MOE_OK;
}

void moe_topics_window(const moe_corpus *c, const moe_topics *t, int topic, int i, int n_windows,
                       int T, int32_t *x) {
    size_t b = t->begin[topic], span = t->end[topic] - b;
    size_t room = span > (size_t)T ? span - (size_t)T : 0;
    size_t at = b + (n_windows > 1 ? room * (size_t)i / (size_t)(n_windows - 1) : room / 2);
    for (int j = 0; j < T; j++) x[j] = at + (size_t)j < c->n ? c->bytes[at + (size_t)j] : ' ';
}
