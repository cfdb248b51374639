/* Byte-level text corpora for language modelling: the King James Bible from
 * Debian's bible-kjv package, or any text file; a train/validation split at
 * the tail; random training windows and fixed validation windows. */
#ifndef MOE_DATA_H
#define MOE_DATA_H

#include "moe/config.h"
#include "moe/core.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_corpus {
    uint8_t *bytes; /* the whole text; a byte is a token */
    size_t n;       /* bytes */
    size_t n_train; /* bytes [0, n_train) train, [n_train, n) validation */
} moe_corpus;

/* Loads per cfg (source "bible-kjv" runs `bible -f "Gen1:1-Rev22:21"`;
 * "file" reads cfg->path). Both splits must hold more than seq_len + 1
 * bytes. */
moe_status moe_corpus_load(moe_corpus *c, const moe_data_config *cfg, int seq_len);
/* The whole text cfg names, unsplit, in a malloc'd buffer of *n bytes
 * (free() it): what moe_corpus_load splits, and what tokenizers train on. */
moe_status moe_text_load(const moe_data_config *cfg, uint8_t **bytes, size_t *n);
/* A whole stream (a file, stdin) the same way, with a NUL after the n
 * bytes; `what` names it in errors. */
moe_status moe_text_read(FILE *fp, const char *what, uint8_t **bytes, size_t *n);
/* Wraps an existing buffer (copied), for tests and the API. */
moe_status moe_corpus_from_bytes(moe_corpus *c, const uint8_t *bytes, size_t n, float val_fraction,
                                 int seq_len);
void moe_corpus_free(moe_corpus *c);

/* B random windows of T + 1 bytes from the training split: x [B, T] inputs,
 * y [B, T] next-byte targets. */
void moe_corpus_train_batch(const moe_corpus *c, int B, int T, moe_rng *rng, int32_t *x,
                            int32_t *y);
/* Validation batch i of n_batches: windows spread evenly over the split,
 * the same every time. */
void moe_corpus_val_batch(const moe_corpus *c, int B, int T, int i, int n_batches, int32_t *x,
                          int32_t *y);

/* Labelled stretches of a corpus, for routing analysis (routing.json): the
 * Bible's six divisions (Law, History, Wisdom, Prophets, Gospels & Acts,
 * Epistles & Revelation), found by their first verse. Other corpora have
 * none (n = 0). */
#define MOE_MAX_TOPICS 8
typedef struct moe_topics {
    int n;
    char name[MOE_MAX_TOPICS][32];
    size_t begin[MOE_MAX_TOPICS], end[MOE_MAX_TOPICS]; /* byte range in the corpus */
} moe_topics;

moe_status moe_corpus_topics(const moe_corpus *c, const moe_data_config *cfg, moe_topics *t);
/* Window i of n_windows of T tokens, spread evenly over topic `topic`. */
void moe_topics_window(const moe_corpus *c, const moe_topics *t, int topic, int i, int n_windows,
                       int T, int32_t *x);

/* Masked-LM corruption of tokens [N] in place. Each real (pad_mask 1 or
 * NULL), regular (0 <= id < n_regular: special tokens are never chosen)
 * position is chosen with probability prob; targets [N] get the original
 * token at chosen positions and -1 elsewhere. BERT: a chosen token becomes
 * mask_id 80% of the time, a random regular token 10%, stays 10%;
 * ALL_MASK (seed 003): always mask_id. At least one position is chosen when
 * any is eligible, so the loss is defined. Returns how many were chosen. */
typedef enum moe_mlm_mode { MOE_MLM_BERT, MOE_MLM_ALL_MASK } moe_mlm_mode;
long moe_mlm_mask(int32_t *tokens, int32_t *targets, const uint8_t *pad_mask, long N, float prob,
                  moe_mlm_mode mode, int32_t mask_id, int32_t n_regular, moe_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
