/* API keys: only SHA-256 hashes are kept (a stolen keys file or core dump
 * gives no usable key), a presented key is compared against every stored
 * hash in constant time, and new keys come from OpenSSL's CSPRNG. */
#include "serve/serve.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_LEN 32
#define KEY_BYTES 32
#define HASH_PREFIX "sha256:"

typedef struct serve_key {
    char id[SERVE_NAME_MAX];
    int scopes;
    unsigned char hash[HASH_LEN];
} serve_key;

struct serve_keys {
    serve_key *v;
    int n, cap;
};

static int sha256(const void *data, size_t len, unsigned char out[HASH_LEN]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == HASH_LEN;
}

static void to_hex(const unsigned char *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* 1 when text is exactly 2*n hex digits, decoded into out. */
static int from_hex(const char *text, unsigned char *out, size_t n) {
    if (strlen(text) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++) {
        int hi = serve_hex_digit(text[2 * i]), lo = serve_hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

/* "infer" -> infer; "train" -> train and infer (a trainer may also infer). */
static int parse_scope(const char *s) {
    if (!strcmp(s, "infer")) return SERVE_SCOPE_INFER;
    if (!strcmp(s, "train")) return SERVE_SCOPE_INFER | SERVE_SCOPE_TRAIN;
    return 0;
}

/* where: "keys.txt:3" or "MOE_API_KEYS entry 2", for messages. */
static moe_status add_key(serve_keys *k, const char *where, const char *id, const char *scope,
                          const unsigned char hash[HASH_LEN]) {
    if (!serve_name_valid(id))
        return moe_error(MOE_ERR_FORMAT,
                         "%s: key id '%s' is not a valid name (1..63 of A-Z a-z 0-9 _ . -, "
                         "starting with a letter or digit)",
                         where, id);
    int scopes = parse_scope(scope);
    if (!scopes)
        return moe_error(MOE_ERR_FORMAT, "%s: key '%s' has scope '%s'; use infer or train", where,
                         id, scope);
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->v[i].id, id))
            return moe_error(MOE_ERR_FORMAT,
                             "%s: key id '%s' is used twice; every key needs its own id", where,
                             id);
    if (k->n == k->cap) {
        int cap = k->cap ? 2 * k->cap : 8;
        serve_key *v = realloc(k->v, (size_t)cap * sizeof *v);
        if (!v) return moe_error(MOE_ERR_NOMEM, "API keys: out of memory");
        k->v = v;
        k->cap = cap;
    }
    serve_key *key = &k->v[k->n++];
    snprintf(key->id, sizeof key->id, "%s", id);
    key->scopes = scopes;
    memcpy(key->hash, hash, HASH_LEN);
    return MOE_OK;
}

/* One line of a keys file: "id scope sha256:<hex>", blank, or # comment. */
static moe_status parse_line(serve_keys *k, const char *file, int line_no, char *line) {
    char *hash_sign = strchr(line, '#');
    if (hash_sign) *hash_sign = '\0';
    char *save = NULL, *f[4];
    int n = 0;
    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 4;
         t = strtok_r(NULL, " \t\r\n", &save))
        f[n++] = t;
    if (n == 0) return MOE_OK;
    if (n != 3)
        return moe_error(MOE_ERR_FORMAT,
                         "%s:%d: want \"id scope sha256:<64 hex digits>\" (three fields), got "
                         "%s%d field%s; `moe key new` prints such a line",
                         file, line_no, n > 3 ? "more than " : "", n > 3 ? 3 : n,
                         n == 1 ? "" : "s");
    unsigned char hash[HASH_LEN];
    if (strncmp(f[2], HASH_PREFIX, strlen(HASH_PREFIX)) ||
        !from_hex(f[2] + strlen(HASH_PREFIX), hash, HASH_LEN))
        return moe_error(MOE_ERR_FORMAT,
                         "%s:%d: key '%s': the third field must be sha256: and 64 hex digits "
                         "(the hash, never the key itself)",
                         file, line_no, f[0]);
    char where[600];
    snprintf(where, sizeof where, "%s:%d", file, line_no);
    return add_key(k, where, f[0], f[1], hash);
}

static moe_status load_file(serve_keys *k, const char *file) {
    FILE *fp = fopen(file, "r");
    if (!fp)
        return moe_error(MOE_ERR_IO, "cannot open the keys file %s: %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int line_no = 0;
    moe_status st = MOE_OK;
    while (st == MOE_OK && getline(&line, &cap, fp) >= 0) st = parse_line(k, file, ++line_no, line);
    if (st == MOE_OK && ferror(fp))
        st = moe_error(MOE_ERR_IO, "cannot read the keys file %s: %s", file, strerror(errno));
    free(line);
    fclose(fp);
    return st;
}

/* Keys given in clear must not be guessable by a short brute force. */
#define MIN_ENV_KEY_LEN 16

/* "id:scope:key,id:scope:key"; the key is hashed at once and the copy wiped. */
static moe_status load_env(serve_keys *k, const char *value) {
    char *copy = strdup(value);
    if (!copy) return moe_error(MOE_ERR_NOMEM, "API keys: out of memory");
    moe_status st = MOE_OK;
    int entry = 0;
    char *save = NULL;
    for (char *e = strtok_r(copy, ",", &save); e && st == MOE_OK; e = strtok_r(NULL, ",", &save)) {
        char where[64];
        snprintf(where, sizeof where, "MOE_API_KEYS entry %d", ++entry);
        while (*e == ' ' || *e == '\n' || *e == '\t') e++;
        if (!*e) continue;
        char *c1 = strchr(e, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || !c2[1]) {
            st = moe_error(MOE_ERR_FORMAT, "%s: want id:scope:key (scope infer or train)", where);
            break;
        }
        *c1 = *c2 = '\0';
        char *key = c2 + 1;
        size_t key_len = strcspn(key, " \t\r\n");
        unsigned char hash[HASH_LEN];
        if (key_len < MIN_ENV_KEY_LEN)
            st = moe_error(MOE_ERR_FORMAT,
                           "%s: the key of '%s' has %zu characters; use at least %d (`moe key "
                           "new` makes 64 random hex digits)",
                           where, e, key_len, MIN_ENV_KEY_LEN);
        else if (!sha256(key, key_len, hash))
            st = moe_error(MOE_ERR_INVALID, "%s: SHA-256 failed (OpenSSL)", where);
        else
            st = add_key(k, where, e, c1 + 1, hash);
    }
    OPENSSL_cleanse(copy, strlen(value));
    free(copy);
    return st;
}

moe_status serve_keys_load(serve_keys **out, const char *file, const char *env_value) {
    *out = NULL;
    serve_keys *k = calloc(1, sizeof *k);
    if (!k) return moe_error(MOE_ERR_NOMEM, "API keys: out of memory");
    moe_status st = MOE_OK;
    if (file && *file) st = load_file(k, file);
    if (st == MOE_OK && env_value && *env_value) st = load_env(k, env_value);
    if (st == MOE_OK && k->n == 0)
        st = moe_error(MOE_ERR_INVALID,
                       "no API keys: give --keys FILE (lines from `moe key new`) or set "
                       "MOE_API_KEYS=id:scope:key,...");
    if (st != MOE_OK) {
        serve_keys_free(k);
        return st;
    }
    *out = k;
    return MOE_OK;
}

void serve_keys_free(serve_keys *k) {
    if (!k) return;
    if (k->v) OPENSSL_cleanse(k->v, (size_t)k->cap * sizeof *k->v);
    free(k->v);
    free(k);
}

const char *serve_keys_check(const serve_keys *k, const char *presented, int *scopes) {
    if (scopes) *scopes = 0;
    if (!k || !presented) return NULL;
    unsigned char hash[HASH_LEN];
    if (!sha256(presented, strlen(presented), hash)) return NULL;
    /* every stored hash is compared, whatever matched before: the time
     * taken says nothing about which key (or how much of one) matched */
    int found = -1;
    for (int i = 0; i < k->n; i++) {
        int match = CRYPTO_memcmp(hash, k->v[i].hash, HASH_LEN) == 0;
        found = match ? i : found;
    }
    if (found < 0) return NULL;
    if (scopes) *scopes = k->v[found].scopes;
    return k->v[found].id;
}

int serve_keys_count(const serve_keys *k) {
    return k ? k->n : 0;
}

moe_status serve_key_new(const char *id, const char *scope, char *key, size_t key_cap, char *line,
                         size_t line_cap) {
    if (!serve_name_valid(id))
        return moe_error(MOE_ERR_INVALID,
                         "key id '%s' is not a valid name (1..63 of A-Z a-z 0-9 _ . -, starting "
                         "with a letter or digit)",
                         id ? id : "");
    if (!scope || !parse_scope(scope))
        return moe_error(MOE_ERR_INVALID, "scope '%s' is not infer or train", scope ? scope : "");
    if (key_cap < 2 * KEY_BYTES + 1 ||
        line_cap < strlen(id) + strlen(scope) + strlen(HASH_PREFIX) + 2 * HASH_LEN + 3)
        return moe_error(MOE_ERR_INVALID, "serve_key_new: buffers too small");
    unsigned char raw[KEY_BYTES], hash[HASH_LEN];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return moe_error(MOE_ERR_IO, "cannot draw a random key (OpenSSL RAND_bytes failed)");
    to_hex(raw, sizeof raw, key);
    OPENSSL_cleanse(raw, sizeof raw);
    if (!sha256(key, strlen(key), hash)) return moe_error(MOE_ERR_IO, "SHA-256 failed (OpenSSL)");
    char hex[2 * HASH_LEN + 1];
    to_hex(hash, sizeof hash, hex);
    snprintf(line, line_cap, "%s %s " HASH_PREFIX "%s", id, scope, hex);
    return MOE_OK;
}
