/* Request bodies -> validated structs (POST /v1/infer, /v1/generate).
 *
 * Pure: no model, no globals; the fuzz target (tests/fuzz/fuzz_request.c).
 * Every error is a 400 naming the field ("tokens[1][7]") and saying what is
 * allowed. What a client sends is bounded before anything is allocated for
 * it: at most max_inputs inputs, max_tokens token ids in total, 4 x
 * max_tokens bytes of text in total (a UTF-8 character is at most 4 bytes;
 * the token count after tokenizing is checked against max_tokens by the
 * model), and rows whose values the body itself bounds. */
#include "serve/serve.h"

#include "io/utf8.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FEATURES (1 << 20)      /* numbers per row */
#define MAX_TOP 20                  /* next-token candidates */
#define MAX_SEED 9007199254740992.0 /* 2^53: every integer a JSON number holds exactly */

static moe_status bad(serve_error *e, const char *field, const char *fmt, const char *a) {
    return serve_fail(e, 400, field, fmt, a);
}

/* cJSON decodes "\u0000" into a NUL that silently cuts the string: find
 * such an escape in the raw body (a backslash run of odd length before u). */
static int has_nul_escape(const char *b, size_t n) {
    for (size_t i = 0; i + 5 < n; i++) {
        if (b[i] != '\\' || memcmp(b + i + 1, "u0000", 5) != 0) continue;
        size_t run = 1;
        while (run <= i && b[i - run] == '\\') run++;
        if (run % 2 == 1) return 1;
    }
    return 0;
}

/* The body as one JSON object, nothing after it but whitespace. */
static moe_status parse_object(const char *body, size_t len, cJSON **out, serve_error *e) {
    *out = NULL;
    if (!body || len == 0) return bad(e, "", "%sthe body is empty: send a JSON object", "");
    if (has_nul_escape(body, len))
        return bad(e, "", "%sa string holds \\u0000 (NUL): not allowed", "");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        char at[96];
        size_t off = end && end >= body ? (size_t)(end - body) : 0;
        snprintf(at, sizeof at, "near byte %zu", off);
        return bad(e, "", "malformed JSON %s: send one JSON object", at);
    }
    size_t i = (size_t)(end - body);
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r'))
        i++;
    if (i < len) {
        cJSON_Delete(root);
        char at[64];
        snprintf(at, sizeof at, "%zu", i);
        return bad(e, "", "trailing data after the JSON object at byte %s: send one object", at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad(e, "", "%sthe body must be a JSON object ({\"model\": ...})", "");
    }
    *out = root;
    return MOE_OK;
}

/* Every key known, none twice. keys is NULL-terminated. */
static moe_status check_keys(const cJSON *root, const char *const *keys, const char *allowed,
                             serve_error *e) {
    for (const cJSON *a = root->child; a; a = a->next) {
        const char *k = a->string ? a->string : "";
        int known = 0;
        for (int i = 0; keys[i]; i++) known |= strcmp(k, keys[i]) == 0;
        char shown[48];
        size_t n = strlen(k), j;
        for (j = 0; j < n && j + 1 < sizeof shown; j++)
            if ((unsigned char)k[j] < 0x20 || (unsigned char)k[j] >= 0x7F) break;
        snprintf(shown, sizeof shown, "%.*s", (int)j, k);
        if (j < n) snprintf(shown, sizeof shown, "(unprintable key)");
        if (!known) return bad(e, shown, "unknown field: the allowed fields are %s", allowed);
        for (const cJSON *b = a->next; b; b = b->next)
            if (b->string && strcmp(b->string, k) == 0)
                return bad(e, shown, "%sthe field is given twice: give it once", "");
    }
    return MOE_OK;
}

static const cJSON *get(const cJSON *root, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(root, key);
}

/* An integral number in [lo, hi]. */
static moe_status get_int(const cJSON *v, const char *field, double lo, double hi, double *out,
                          serve_error *e) {
    if (!cJSON_IsNumber(v))
        return serve_fail(e, 400, field, "must be an integer in [%.0f, %.0f]", lo, hi);
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
        return serve_fail(e, 400, field, "must be an integer in [%.0f, %.0f]", lo, hi);
    *out = d;
    return MOE_OK;
}

static moe_status get_number(const cJSON *v, const char *field, double lo, double hi, int lo_open,
                             double *out, serve_error *e) {
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d > hi || (lo_open ? d <= lo : d < lo))
        return serve_fail(e, 400, field, "must be a number in %s%g, %g]", lo_open ? "(" : "[", lo,
                          hi);
    *out = d;
    return MOE_OK;
}

static moe_status get_bool(const cJSON *v, const char *field, int *out, serve_error *e) {
    if (!cJSON_IsBool(v)) return bad(e, field, "%smust be true or false", "");
    *out = cJSON_IsTrue(v);
    return MOE_OK;
}

static moe_status get_model(const cJSON *root, char *model, serve_error *e) {
    const cJSON *v = get(root, "model");
    if (!v)
        return bad(e, "model", "%sis required: the name of a served model (GET /v1/models)", "");
    if (!cJSON_IsString(v) || !serve_name_valid(v->valuestring))
        return bad(e, "model",
                   "%smust be a model name: 1-63 characters of [A-Za-z0-9_.-], the first one "
                   "alphanumeric",
                   "");
    snprintf(model, SERVE_NAME_MAX, "%s", v->valuestring);
    return MOE_OK;
}

/* A non-empty UTF-8 string, copied; *budget (bytes left) goes down. */
static moe_status get_text(const cJSON *v, const char *field, long *budget, long limit, char **out,
                           serve_error *e) {
    if (!cJSON_IsString(v)) return bad(e, field, "%smust be a string", "");
    size_t n = strlen(v->valuestring);
    if (n == 0) return bad(e, field, "%sis empty: give at least one character", "");
    if (!utf8_is_valid((const unsigned char *)v->valuestring, n))
        return bad(e, field, "%sis not valid UTF-8", "");
    if ((long)n > *budget)
        return serve_fail(e, 400, field, "too long: at most %ld bytes of text per request", limit);
    *budget -= (long)n;
    *out = malloc(n + 1);
    if (!*out) return serve_fail(e, 500, field, "out of memory");
    memcpy(*out, v->valuestring, n + 1);
    return MOE_OK;
}

/* A non-empty array of token ids (integers in [0, 2^31)); *budget (ids
 * left) goes down. */
static moe_status get_ids(const cJSON *v, const char *field, long *budget, long limit,
                          int32_t **ids, int *n, serve_error *e) {
    if (!cJSON_IsArray(v)) return bad(e, field, "%smust be an array of token ids", "");
    int count = cJSON_GetArraySize(v);
    if (count == 0) return bad(e, field, "%sis empty: give at least one token id", "");
    if (count > *budget)
        return serve_fail(e, 400, field, "too many tokens: at most %ld per request", limit);
    *budget -= count;
    *ids = malloc((size_t)count * sizeof **ids);
    if (!*ids) return serve_fail(e, 500, field, "out of memory");
    int i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        char f[64];
        snprintf(f, sizeof f, "%s[%d]", field, i);
        double d = 0;
        moe_status st = get_int(t, f, 0, INT32_MAX, &d, e);
        if (st) return st;
        (*ids)[i] = (int32_t)d;
    }
    *n = count;
    return MOE_OK;
}

static moe_status too_many_inputs(const char *field, int n, int max, serve_error *e) {
    if (n == 0) return bad(e, field, "%sis empty: give at least one input", "");
    return serve_fail(e, 400, field, "%d inputs: at most %d per request", n, max);
}

static moe_status parse_texts(const cJSON *v, const serve_limits *lim, serve_infer_request *r,
                              serve_error *e) {
    const long limit = 4L * lim->max_tokens;
    long budget = limit;
    r->kind = SERVE_INPUT_TEXT;
    if (cJSON_IsString(v)) {
        r->texts = calloc(1, sizeof *r->texts);
        if (!r->texts) return serve_fail(e, 500, "text", "out of memory");
        r->n_inputs = 1;
        r->single = 1;
        return get_text(v, "text", &budget, limit, &r->texts[0], e);
    }
    if (!cJSON_IsArray(v)) return bad(e, "text", "%smust be a string or an array of strings", "");
    int n = cJSON_GetArraySize(v);
    if (n == 0 || n > lim->max_inputs) return too_many_inputs("text", n, lim->max_inputs, e);
    r->texts = calloc((size_t)n, sizeof *r->texts);
    if (!r->texts) return serve_fail(e, 500, "text", "out of memory");
    r->n_inputs = n;
    int i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        char f[64];
        snprintf(f, sizeof f, "text[%d]", i);
        moe_status st = get_text(t, f, &budget, limit, &r->texts[i], e);
        if (st) return st;
    }
    return MOE_OK;
}

static moe_status parse_tokens(const cJSON *v, const serve_limits *lim, serve_infer_request *r,
                               serve_error *e) {
    const long limit = lim->max_tokens;
    long budget = limit;
    r->kind = SERVE_INPUT_TOKENS;
    if (!cJSON_IsArray(v))
        return bad(e, "tokens", "%smust be an array of token ids or an array of such arrays", "");
    int nested = v->child && cJSON_IsArray(v->child);
    int n = nested ? cJSON_GetArraySize(v) : 1;
    if (n > lim->max_inputs) return too_many_inputs("tokens", n, lim->max_inputs, e);
    r->tokens = calloc((size_t)n, sizeof *r->tokens);
    r->n_tokens = calloc((size_t)n, sizeof *r->n_tokens);
    if (!r->tokens || !r->n_tokens) return serve_fail(e, 500, "tokens", "out of memory");
    r->n_inputs = n;
    r->single = !nested;
    if (!nested) return get_ids(v, "tokens", &budget, limit, &r->tokens[0], &r->n_tokens[0], e);
    int i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        char f[64];
        snprintf(f, sizeof f, "tokens[%d]", i);
        moe_status st = get_ids(t, f, &budget, limit, &r->tokens[i], &r->n_tokens[i], e);
        if (st) return st;
    }
    return MOE_OK;
}

static moe_status parse_rows(const cJSON *v, const serve_limits *lim, serve_infer_request *r,
                             serve_error *e) {
    r->kind = SERVE_INPUT_ROWS;
    if (!cJSON_IsArray(v) || (v->child && !cJSON_IsArray(v->child)))
        return bad(e, "rows", "%smust be an array of rows, each an array of numbers: [[5.1, 3.5]]",
                   "");
    int n = cJSON_GetArraySize(v);
    if (n == 0 || n > lim->max_inputs) return too_many_inputs("rows", n, lim->max_inputs, e);
    int F = cJSON_GetArraySize(v->child);
    if (F == 0) return bad(e, "rows[0]", "%sis empty: give at least one number", "");
    if (F > MAX_FEATURES)
        return serve_fail(e, 400, "rows[0]", "%d numbers: at most %d per row", F, MAX_FEATURES);
    /* every row is checked to have F numbers before F x n is allocated */
    int i = 0;
    for (const cJSON *row = v->child; row; row = row->next, i++) {
        char f[64];
        snprintf(f, sizeof f, "rows[%d]", i);
        if (!cJSON_IsArray(row)) return bad(e, f, "%smust be an array of numbers", "");
        int w = cJSON_GetArraySize(row);
        if (w != F)
            return serve_fail(e, 400, f,
                              "has %d numbers but rows[0] has %d: every row must have "
                              "the same width",
                              w, F);
    }
    r->rows = malloc((size_t)n * (size_t)F * sizeof *r->rows);
    if (!r->rows) return serve_fail(e, 500, "rows", "out of memory");
    r->n_inputs = n;
    r->n_features = F;
    i = 0;
    for (const cJSON *row = v->child; row; row = row->next, i++) {
        int j = 0;
        for (const cJSON *x = row->child; x; x = x->next, j++) {
            double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
            if (!isfinite(d) || fabs(d) > 3.0e38) {
                char f[64];
                snprintf(f, sizeof f, "rows[%d][%d]", i, j);
                return bad(e, f, "%smust be a finite number (within float range)", "");
            }
            r->rows[(size_t)i * F + j] = (float)d;
        }
    }
    return MOE_OK;
}

moe_status serve_parse_infer(const char *body, size_t len, const serve_limits *lim,
                             serve_infer_request *out, serve_error *err) {
    static const char *const keys[] = {"model", "text", "tokens", "rows", "trace", "top", NULL};
    memset(out, 0, sizeof *out);
    out->top = 5;
    cJSON *root = NULL;
    moe_status st = parse_object(body, len, &root, err);
    if (!st) st = check_keys(root, keys, "model, text, tokens, rows, trace, top", err);
    if (!st) st = get_model(root, out->model, err);
    const cJSON *text = root ? get(root, "text") : NULL,
                *tokens = root ? get(root, "tokens") : NULL,
                *rows = root ? get(root, "rows") : NULL;
    if (!st && (!!text + !!tokens + !!rows) != 1)
        st = bad(err, text ? (tokens ? "tokens" : "rows") : "text",
                 "%sgive exactly one input: \"text\", \"tokens\" or \"rows\"", "");
    if (!st)
        st = text     ? parse_texts(text, lim, out, err)
             : tokens ? parse_tokens(tokens, lim, out, err)
                      : parse_rows(rows, lim, out, err);
    const cJSON *v;
    if (!st && (v = get(root, "trace"))) st = get_bool(v, "trace", &out->trace, err);
    double d = 0;
    if (!st && (v = get(root, "top")) && !(st = get_int(v, "top", 1, MAX_TOP, &d, err)))
        out->top = (int)d;
    cJSON_Delete(root);
    return st;
}

void serve_infer_request_free(serve_infer_request *r) {
    if (!r) return;
    for (int i = 0; i < r->n_inputs; i++) {
        if (r->texts) free(r->texts[i]);
        if (r->tokens) free(r->tokens[i]);
    }
    free(r->texts);
    free(r->tokens);
    free(r->n_tokens);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

moe_status serve_parse_generate(const char *body, size_t len, const serve_limits *lim,
                                serve_generate_request *out, serve_error *err) {
    static const char *const keys[] = {"model",       "prompt", "prompt_tokens", "max_tokens",
                                       "temperature", "top_k",  "top_p",         "seed",
                                       "trace",       NULL};
    memset(out, 0, sizeof *out);
    out->max_tokens = 64 < lim->max_tokens ? 64 : lim->max_tokens;
    out->temperature = 1;
    out->top_p = 1;
    cJSON *root = NULL;
    moe_status st = parse_object(body, len, &root, err);
    if (!st)
        st = check_keys(root, keys,
                        "model, prompt, prompt_tokens, max_tokens, temperature, top_k, top_p, "
                        "seed, trace",
                        err);
    if (!st) st = get_model(root, out->model, err);
    const cJSON *v;
    double d = 0;
    if (!st && (v = get(root, "max_tokens")) &&
        !(st = get_int(v, "max_tokens", 1, lim->max_tokens, &d, err)))
        out->max_tokens = (int)d;
    if (!st && (v = get(root, "temperature")) &&
        !(st = get_number(v, "temperature", 0, 10, 0, &d, err)))
        out->temperature = (float)d;
    if (!st && (v = get(root, "top_k")) && !(st = get_int(v, "top_k", 0, 1 << 24, &d, err)))
        out->top_k = (int)d;
    if (!st && (v = get(root, "top_p")) && !(st = get_number(v, "top_p", 0, 1, 1, &d, err)))
        out->top_p = (float)d;
    if (!st && (v = get(root, "seed")) && !(st = get_int(v, "seed", 0, MAX_SEED, &d, err)))
        out->seed = (uint64_t)d;
    if (!st && (v = get(root, "trace"))) st = get_bool(v, "trace", &out->trace, err);
    const cJSON *prompt = root ? get(root, "prompt") : NULL;
    const cJSON *ptok = root ? get(root, "prompt_tokens") : NULL;
    if (!st && !!prompt + !!ptok != 1)
        st = bad(err, prompt ? "prompt_tokens" : "prompt",
                 "%sgive exactly one of \"prompt\" (text) or \"prompt_tokens\" (ids)", "");
    /* the prompt and the generated tokens share the request's budget */
    const long limit = lim->max_tokens;
    long budget = limit - out->max_tokens;
    if (!st && prompt) {
        st = get_text(prompt, "prompt", &budget, limit, &out->prompt, err);
        if (st == MOE_ERR_INVALID && strncmp(err->message, "too long", 8) == 0)
            serve_fail(err, 400, "prompt",
                       "too long: prompt bytes plus max_tokens must be at most %ld", limit);
    }
    if (!st && ptok) {
        st = get_ids(ptok, "prompt_tokens", &budget, limit, &out->prompt_tokens,
                     &out->n_prompt_tokens, err);
        if (st == MOE_ERR_INVALID && strncmp(err->message, "too many", 8) == 0)
            serve_fail(err, 400, "prompt_tokens",
                       "too many tokens: prompt tokens plus max_tokens must be at most %ld", limit);
    }
    cJSON_Delete(root);
    return st;
}

void serve_generate_request_free(serve_generate_request *r) {
    if (!r) return;
    free(r->prompt);
    free(r->prompt_tokens);
    memset(r, 0, sizeof *r);
}

moe_status serve_parse_object(const char *body, size_t len, const char *const *keys,
                              const char *allowed, cJSON **out, serve_error *err) {
    moe_status st = parse_object(body, len, out, err);
    if (st == MOE_OK && (st = check_keys(*out, keys, allowed, err)) != MOE_OK) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return st;
}
