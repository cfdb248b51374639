/* The tokenizer file (docs/tokenizers.md): JSON with the kind, the
 * vocabulary size, the merges as id pairs and the special tokens' ids.
 * Written atomically; read with errors that name the file and the field. */
#include "data/tokenizer_internal.h"
#include "io/fsutil.h"
#include "io/jsonutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION 1

moe_status moe_tokenizer_save(const moe_tokenizer *t, const char *path) {
    if (t->kind != TOK_BYTE_BPE)
        return moe_error(MOE_ERR_UNSUPPORTED,
                         "tokenizer save %s: a GPT-2 tokenizer is its encoder.json and vocab.bpe; "
                         "keep those and load them with moe_tokenizer_load_gpt2",
                         path);
    cJSON *root = cJSON_CreateObject(), *merges = NULL, *special = NULL;
    int ok = root != NULL;
    ok = ok && cJSON_AddStringToObject(root, "kind", "byte-bpe");
    ok = ok && cJSON_AddNumberToObject(root, "version", FORMAT_VERSION);
    ok = ok && cJSON_AddStringToObject(root, "pretokenizer", "gpt2");
    ok = ok && cJSON_AddNumberToObject(root, "vocab_size", moe_tokenizer_vocab_size(t));
    ok = ok && (special = cJSON_AddObjectToObject(root, "special_tokens"));
    for (int k = 0; ok && k < MOE_TOK_N_SPECIAL; k++)
        ok = cJSON_AddNumberToObject(special, moe_tokenizer_special_name(k),
                                     moe_tokenizer_special(t, k)) != NULL;
    ok = ok && (merges = cJSON_AddArrayToObject(root, "merges"));
    for (int i = 0; ok && i < t->n_merges; i++) {
        int pair[2] = {t->merges[i].left, t->merges[i].right};
        cJSON *item = cJSON_CreateIntArray(pair, 2);
        ok = item && cJSON_AddItemToArray(merges, item);
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return moe_error(MOE_ERR_NOMEM, "tokenizer save %s: out of memory", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* the terminating NUL becomes the final newline */
    moe_status st = fs_write_file(path, text, n + 1);
    free(text);
    return st;
}

/* Reads root's merges into a malloc'd array, checking their shape. */
static moe_status read_merges(const cJSON *root, const char *path, tok_merge **out, int *n) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(root, "merges");
    if (!cJSON_IsArray(merges))
        return moe_error(MOE_ERR_FORMAT,
                         "tokenizer %s: \"merges\" must be an array of [left, "
                         "right] id pairs",
                         path);
    *n = cJSON_GetArraySize(merges);
    *out = malloc((size_t)(*n ? *n : 1) * sizeof **out);
    if (!*out) return moe_error(MOE_ERR_NOMEM, "tokenizer %s: out of memory", path);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const cJSON *l = cJSON_GetArrayItem(m, 0), *r = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsNumber(l) ||
            !cJSON_IsNumber(r) || l->valuedouble != (double)l->valueint ||
            r->valuedouble != (double)r->valueint) {
            free(*out);
            *out = NULL;
            return moe_error(MOE_ERR_FORMAT,
                             "tokenizer %s: merges[%d] must be a pair of integer ids [left, right]",
                             path, i);
        }
        (*out)[i++] = (tok_merge){l->valueint, r->valueint};
    }
    return MOE_OK;
}

static moe_status check_header(const cJSON *root, const char *path) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (!cJSON_IsString(kind))
        return moe_error(MOE_ERR_FORMAT,
                         "tokenizer %s: no \"kind\"; is it a file moe tokenizer train wrote?",
                         path);
    if (strcmp(kind->valuestring, "byte-bpe") != 0)
        return moe_error(MOE_ERR_FORMAT,
                         "tokenizer %s: kind \"%s\" is not \"byte-bpe\" (GPT-2's tokenizer loads "
                         "from encoder.json and vocab.bpe: moe tokenizer --gpt2 DIR)",
                         path, kind->valuestring);
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(version) || version->valueint != FORMAT_VERSION)
        return moe_error(MOE_ERR_FORMAT,
                         "tokenizer %s: \"version\" must be %d; a newer libmoe may have written it",
                         path, FORMAT_VERSION);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pretokenizer");
    if (!cJSON_IsString(pre) || strcmp(pre->valuestring, "gpt2") != 0)
        return moe_error(MOE_ERR_FORMAT, "tokenizer %s: \"pretokenizer\" must be \"gpt2\"", path);
    return MOE_OK;
}

/* vocab_size and the special ids must be what the merges imply. */
static moe_status check_ids(const cJSON *root, const char *path, const moe_tokenizer *t) {
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "vocab_size");
    if (!cJSON_IsNumber(size) || size->valueint != moe_tokenizer_vocab_size(t))
        return moe_error(MOE_ERR_FORMAT,
                         "tokenizer %s: \"vocab_size\" must be %d (256 bytes + %d merges + %d "
                         "special tokens)",
                         path, moe_tokenizer_vocab_size(t), t->n_merges, MOE_TOK_N_SPECIAL);
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(root, "special_tokens");
    for (int k = 0; k < MOE_TOK_N_SPECIAL; k++) {
        const char *name = moe_tokenizer_special_name(k);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(special, name);
        if (!cJSON_IsNumber(id) || id->valueint != moe_tokenizer_special(t, k))
            return moe_error(MOE_ERR_FORMAT,
                             "tokenizer %s: special_tokens.\"%s\" must be %d (the special "
                             "tokens follow the merges in the order [CLS] [SEP] [PAD] [MASK])",
                             path, name, (int)moe_tokenizer_special(t, k));
    }
    return MOE_OK;
}

moe_status moe_tokenizer_load(moe_tokenizer **t, const char *path) {
    *t = NULL;
    char *text = NULL;
    moe_status st = fs_read_file(path, &text, NULL, NULL);
    if (st != MOE_OK) {
        char why[512]; /* the message names the file; moe_error overwrites it */
        snprintf(why, sizeof why, "%s", moe_last_error());
        return moe_error(st, "tokenizer: %s (moe tokenizer train writes one)", why);
    }
    cJSON *root = NULL;
    char *origin = fs_printf("tokenizer %s", path);
    st = origin ? json_parse_located(&root, text, origin) : MOE_ERR_NOMEM;
    free(origin);
    free(text);
    if (st == MOE_OK && !cJSON_IsObject(root))
        st = moe_error(MOE_ERR_FORMAT, "tokenizer %s: the document must be a JSON object", path);
    if (st == MOE_OK) st = check_header(root, path);
    tok_merge *merges = NULL;
    int n_merges = 0;
    if (st == MOE_OK) st = read_merges(root, path, &merges, &n_merges);
    if (st == MOE_OK) st = tok_from_merges(t, merges, n_merges, path);
    if (st == MOE_OK && (st = check_ids(root, path, *t)) != MOE_OK) {
        moe_tokenizer_free(*t);
        *t = NULL;
    }
    free(merges);
    cJSON_Delete(root);
    return st;
}
