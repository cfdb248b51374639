/* Byte-level corpora and batching. */
#include "moe/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIBLE_CMD "bible -f \"Gen1:1-Rev22:21\" 2>/dev/null"

moe_status moe_text_read(FILE *fp, const char *what, uint8_t **out, size_t *n) {
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return moe_error(MOE_ERR_NOMEM, "%s: out of memory", what);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                return moe_error(MOE_ERR_NOMEM, "%s: out of memory", what);
            }
            buf = bigger;
        }
    }
    if (ferror(fp)) {
        free(buf);
        return moe_error(MOE_ERR_IO, "%s: read failed: %s", what, strerror(errno));
    }
    buf[len] = 0; /* len < cap: the buffer doubles when full */
    *out = buf;
    *n = len;
    return MOE_OK;
}

static moe_status load_bible(uint8_t **bytes, size_t *n) {
    FILE *fp = popen(BIBLE_CMD, "r");
    if (!fp) return moe_error(MOE_ERR_IO, "data.source = bible-kjv: cannot run `bible`");
    moe_status st = moe_text_read(fp, "bible-kjv", bytes, n);
    int rc = pclose(fp);
    if (st == MOE_OK && (rc != 0 || *n < 1000000)) {
        free(*bytes);
        *bytes = NULL;
        return moe_error(MOE_ERR_IO,
                         "data.source = bible-kjv: `bible` is missing or printed too little; "
                         "install Debian's bible-kjv package (scripts/install-deps.sh)");
    }
    return st;
}

static moe_status load_file(const char *path, uint8_t **bytes, size_t *n) {
    if (!path[0])
        return moe_error(MOE_ERR_INVALID, "data.source = file needs data.path (a text file)");
    FILE *fp = fopen(path, "rb");
    if (!fp) return moe_error(MOE_ERR_IO, "data.path %s: %s", path, strerror(errno));
    moe_status st = moe_text_read(fp, path, bytes, n);
    fclose(fp);
    return st;
}

moe_status moe_corpus_from_bytes(moe_corpus *c, const uint8_t *bytes, size_t n, float val_fraction,
                                 int seq_len) {
    memset(c, 0, sizeof *c);
    if (!(val_fraction > 0 && val_fraction < 1))
        return moe_error(MOE_ERR_INVALID, "data.val_fraction = %g must be in (0, 1)",
                         (double)val_fraction);
    size_t n_val = (size_t)((double)n * val_fraction);
    size_t need = (size_t)seq_len + 2;
    if (n_val < need || n - n_val < need)
        return moe_error(MOE_ERR_INVALID,
                         "data: %zu bytes give a %zu-byte validation split; each split needs "
                         "more than seq_len + 1 = %d bytes: use more text or a shorter "
                         "train.seq_len",
                         n, n_val, seq_len + 1);
    c->bytes = malloc(n);
    if (!c->bytes) return moe_error(MOE_ERR_NOMEM, "data: out of memory");
    memcpy(c->bytes, bytes, n);
    c->n = n;
    c->n_train = n - n_val;
    return MOE_OK;
}

moe_status moe_text_load(const moe_data_config *cfg, uint8_t **bytes, size_t *n) {
    *bytes = NULL;
    *n = 0;
    if (strcmp(cfg->source, "bible-kjv") == 0) return load_bible(bytes, n);
    if (strcmp(cfg->source, "file") == 0) return load_file(cfg->path, bytes, n);
    return moe_error(MOE_ERR_INVALID, "data.source = \"%s\": use \"bible-kjv\" or \"file\"",
                     cfg->source);
}

moe_status moe_corpus_load(moe_corpus *c, const moe_data_config *cfg, int seq_len) {
    uint8_t *bytes = NULL;
    size_t n = 0;
    memset(c, 0, sizeof *c);
    moe_status st = moe_text_load(cfg, &bytes, &n);
    if (st != MOE_OK) return st;
    st = moe_corpus_from_bytes(c, bytes, n, cfg->val_fraction, seq_len);
    free(bytes);
    return st;
}

void moe_corpus_free(moe_corpus *c) {
    free(c->bytes);
    memset(c, 0, sizeof *c);
}

static void window(const moe_corpus *c, size_t start, int T, int32_t *x, int32_t *y) {
    for (int t = 0; t < T; t++) {
        x[t] = c->bytes[start + t];
        y[t] = c->bytes[start + t + 1];
    }
}

void moe_corpus_train_batch(const moe_corpus *c, int B, int T, moe_rng *rng, int32_t *x,
                            int32_t *y) {
    size_t span = c->n_train - (size_t)T - 1;
    for (int b = 0; b < B; b++) {
        size_t start = (size_t)(moe_rng_u64(rng) % span);
        window(c, start, T, x + (size_t)b * T, y + (size_t)b * T);
    }
}

void moe_corpus_val_batch(const moe_corpus *c, int B, int T, int i, int n_batches, int32_t *x,
                          int32_t *y) {
    size_t span = c->n - c->n_train - (size_t)T - 1;
    size_t windows = (size_t)B * (size_t)(n_batches > 0 ? n_batches : 1);
    for (int b = 0; b < B; b++) {
        size_t w = (size_t)i * B + b;
        size_t start = c->n_train + span * w / windows;
        window(c, start, T, x + (size_t)b * T, y + (size_t)b * T);
    }
}
