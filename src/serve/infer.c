/* One batch of infer requests through a model: the model-dependent checks
 * (token ids < vocab, lengths <= max_seq_len, row width), then ONE forward
 * over every input of every request (transformers: a padded [B, T] batch,
 * with a padding mask for encoders and right padding for decoders, whose
 * causal attention never looks ahead at it; dense families: rows stacked),
 * then the outputs split back per request into their JSON replies. Served
 * models run dropless, so an answer does not depend on its batch. */
#include "serve/models_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request of the batch, prepared. */
typedef struct prep {
    serve_job *job;
    int ok;        /* passed the checks; in the forward */
    int n;         /* inputs */
    int32_t **ids; /* [n][len[i]] (transformers) */
    int *len;
    int seq0;    /* its first sequence (row) in the batch */
    long tokens; /* real tokens (or rows) */
} prep;

static void prep_free(prep *p) {
    for (int i = 0; p->ids && i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->len);
}

static const char *input_name(serve_input_kind k) {
    return k == SERVE_INPUT_TEXT ? "text" : k == SERVE_INPUT_TOKENS ? "tokens" : "rows";
}

/* The field of input i: "text" / "tokens" when the request gave one string
 * or one flat id list, else "text[1]" / "tokens[1]". */
static void field_of(char *f, size_t cap, const serve_infer_request *r, int i) {
    if (r->single)
        snprintf(f, cap, "%s", input_name(r->kind));
    else
        snprintf(f, cap, "%s[%d]", input_name(r->kind), i);
}

/* Token ids of input i: bytes (decoders) or [CLS] + the tokenizer's ids
 * (encoders) for text; given ids as they are, with [CLS] put first for
 * encoders when missing. */
static int input_ids(serve_model *sm, const serve_infer_request *r, int i, int32_t **out, int *n) {
    const int cls = !sm->decoder && sm->tok;
    int32_t *body = NULL;
    size_t nb = 0;
    if (r->kind == SERVE_INPUT_TEXT) {
        const char *t = r->texts[i];
        if (sm->tok) {
            if (moe_tokenizer_encode(sm->tok, (const uint8_t *)t, strlen(t), &body, &nb)) return -1;
        } else {
            nb = strlen(t);
            body = malloc((nb ? nb : 1) * sizeof *body);
            if (!body) return -1;
            for (size_t j = 0; j < nb; j++) body[j] = (uint8_t)t[j];
        }
    } else {
        nb = (size_t)r->n_tokens[i];
        body = malloc(nb * sizeof *body);
        if (!body) return -1;
        memcpy(body, r->tokens[i], nb * sizeof *body);
    }
    const int add = cls && !(nb > 0 && body[0] == sm->cls_id);
    int32_t *ids = malloc((nb + (size_t)add + 1) * sizeof *ids);
    if (!ids) {
        free(body);
        return -1;
    }
    if (add) ids[0] = sm->cls_id;
    if (nb) memcpy(ids + add, body, nb * sizeof *body);
    free(body);
    *out = ids;
    *n = (int)nb + add;
    return 0;
}

/* Every id of input i below the vocabulary: the forward refuses the whole
 * batch otherwise, so a request it would refuse must not get that far.
 * Text ids are bytes for byte-level models, whose vocabulary may be
 * smaller than 256 (a data.source=file run). 0 when all are in range. */
static int check_vocab(serve_model *sm, prep *p, int i, const char *f) {
    const serve_infer_request *r = &p->job->infer;
    const int V = sm->mc->vocab_size;
    const int first = p->len[i] - (r->kind == SERVE_INPUT_TOKENS ? r->n_tokens[i] : 0);
    for (int j = 0; j < p->len[i]; j++) {
        const int32_t id = p->ids[i][j];
        if (id >= 0 && id < V) continue;
        if (r->kind == SERVE_INPUT_TOKENS) {
            char fj[80]; /* "tokens[j]" of a flat list, "tokens[i][j]" of a list of lists */
            snprintf(fj, sizeof fj, "%s[%d]", f, j - first);
            serve_reply_error(sm, p->job->reply, 400, fj,
                              "token id %d is not below the vocabulary size %d of model %s",
                              (int)id, V, sm->name);
        } else if (sm->tok) { /* not expected: the tokenizer's ids were checked at load */
            serve_reply_error(sm, p->job->reply, 400, f,
                              "the tokenizer gave id %d, not below the vocabulary size %d of "
                              "model %s",
                              (int)id, V, sm->name);
        } else {
            serve_reply_error(sm, p->job->reply, 400, f,
                              "byte %d (0x%02X) at offset %d is not below the vocabulary size %d "
                              "of model %s: it reads only bytes 0..%d (no such characters)",
                              (int)id, (unsigned)id & 0xFFu, j, V, sm->name, V - 1);
        }
        return -1;
    }
    return 0;
}

/* Model-dependent checks and token ids; 0 when the request may run. */
static int prepare(serve_model *sm, prep *p) {
    serve_infer_request *r = &p->job->infer;
    serve_reply *rep = p->job->reply;
    p->n = r->n_inputs;
    const int routed = moe_model_moe_layers(sm->model) > 0;
    if (r->trace && !(sm->transformer && routed)) {
        serve_reply_error(sm, rep, 400, "trace",
                          "model %s has no routed tokens to trace (a %s model%s): leave trace "
                          "out",
                          sm->name, sm->family, sm->transformer ? " without MoE layers" : "");
        return -1;
    }
    if (!sm->transformer) {
        if (r->kind != SERVE_INPUT_ROWS) {
            serve_reply_error(sm, rep, 400, input_name(r->kind),
                              "model %s (%s) takes \"rows\" of %d numbers, not %s", sm->name,
                              sm->family, sm->n_features, input_name(r->kind));
            return -1;
        }
        if (r->n_features != sm->n_features) {
            serve_reply_error(sm, rep, 400, "rows[0]",
                              "has %d numbers but model %s takes rows of %d features",
                              r->n_features, sm->name, sm->n_features);
            return -1;
        }
        p->tokens = r->n_inputs;
        return 0;
    }
    if (r->kind == SERVE_INPUT_ROWS) {
        serve_reply_error(sm, rep, 400, "rows",
                          "model %s is a transformer: send \"text\" or \"tokens\", not rows",
                          sm->name);
        return -1;
    }
    p->ids = calloc((size_t)p->n, sizeof *p->ids);
    p->len = calloc((size_t)p->n, sizeof *p->len);
    if (!p->ids || !p->len) {
        serve_reply_error(sm, rep, 503, "", "out of memory: try again later");
        return -1;
    }
    const int L = sm->mc->max_seq_len;
    for (int i = 0; i < p->n; i++) {
        char f[64];
        field_of(f, sizeof f, r, i);
        if (input_ids(sm, r, i, &p->ids[i], &p->len[i])) {
            serve_reply_error(sm, rep, 503, f, "out of memory: try again later");
            return -1;
        }
        if (check_vocab(sm, p, i, f)) return -1;
        if (p->len[i] > L) {
            serve_reply_error(sm, rep, 400, f,
                              "%d tokens but model %s reads at most %d (max_seq_len): shorten "
                              "the input",
                              p->len[i], sm->name, L);
            return -1;
        }
        if (p->len[i] < 1) {
            serve_reply_error(sm, rep, 400, f, "gives no tokens: send some text");
            return -1;
        }
        p->tokens += p->len[i];
    }
    if (p->tokens > sm->lim.max_tokens) {
        serve_reply_error(sm, rep, 400, input_name(r->kind),
                          "%ld tokens in all: at most %d per request", p->tokens,
                          sm->lim.max_tokens);
        return -1;
    }
    return 0;
}

static double softmax_into(double *pr, const moe_real *lg, int V) {
    if (V < 1) return 0;
    double mx = lg[0];
    for (int v = 1; v < V; v++) mx = fmax(mx, lg[v]);
    double z = pr[0] = exp(lg[0] - mx); /* one term is exp(0): z >= 1 */
    for (int v = 1; v < V; v++) z += (pr[v] = exp(lg[v] - mx));
    for (int v = 0; v < V; v++) pr[v] /= z;
    return mx + log(z); /* logsumexp */
}

/* [{"id", "text", "prob"} x top] of the distribution pr [V]. */
static cJSON *top_json(const serve_model *sm, const double *pr, int V, int top) {
    cJSON *arr = cJSON_CreateArray();
    int taken[20];
    for (int j = 0; j < top && j < V; j++) {
        int best = -1;
        for (int v = 0; v < V; v++) {
            int used = 0;
            for (int m = 0; m < j; m++) used |= taken[m] == v;
            if (!used && (best < 0 || pr[v] > pr[best])) best = v;
        }
        taken[j] = best;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "id", best);
        char *t = moe_token_display_text(sm->tok, best); /* as in traces */
        cJSON_AddStringToObject(c, "text", t ? t : "");
        free(t);
        cJSON_AddNumberToObject(c, "prob", pr[best]);
        cJSON_AddItemToArray(arr, c);
    }
    return arr;
}

static void class_json(const serve_model *sm, cJSON *o, const moe_real *lg, int with_label) {
    const int C = sm->n_classes;
    double pr[C > 0 ? C : 1];
    softmax_into(pr, lg, C);
    int best = 0;
    for (int c = 1; c < C; c++)
        if (pr[c] > pr[best]) best = c;
    cJSON_AddNumberToObject(o, "class", best);
    if (with_label) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", best);
        cJSON_AddStringToObject(o, "label", sm->class_names ? sm->class_names[best] : idx);
    }
    cJSON *probs = cJSON_AddArrayToObject(o, "probs");
    for (int c = 0; c < C; c++) cJSON_AddItemToArray(probs, cJSON_CreateNumber(pr[c]));
}

/* One sequence's output: ids [n] at batch sequence b (rows of b*T.. in
 * the logits), its first routing-statistics row row0. */
static cJSON *sequence_json(serve_model *sm, const serve_infer_request *r, const int32_t *ids,
                            int n, int b, int T, long row0, double *pr) {
    cJSON *o = cJSON_CreateObject();
    const int V = sm->mc->vocab_size;
    if (sm->task == MOE_TASK_CLASSIFY) {
        class_json(sm, o, moe_model_class_logits(sm->model) + (size_t)b * sm->n_classes, 1);
    } else {
        const moe_real *lg = moe_model_logits(sm->model) + (size_t)b * T * V;
        cJSON_AddNumberToObject(o, "n_tokens", n);
        if (sm->task == MOE_TASK_LM) {
            double nll = 0;
            for (int t = 0; t + 1 < n; t++) {
                double lse = softmax_into(pr, lg + (size_t)t * V, V);
                nll += lse - lg[(size_t)t * V + ids[t + 1]];
            }
            if (n > 1)
                cJSON_AddNumberToObject(o, "loss", nll / (n - 1));
            else
                cJSON_AddNullToObject(o, "loss");
            softmax_into(pr, lg + (size_t)(n - 1) * V, V);
            cJSON_AddItemToObject(o, "next", top_json(sm, pr, V, r->top));
        } else { /* mlm: the candidates at each [MASK] */
            cJSON *masked = cJSON_AddArrayToObject(o, "masked");
            for (int t = 0; t < n; t++) {
                if (ids[t] != sm->mask_id) continue;
                softmax_into(pr, lg + (size_t)t * V, V);
                cJSON *m = cJSON_CreateObject();
                cJSON_AddNumberToObject(m, "position", t);
                cJSON_AddItemToObject(m, "top", top_json(sm, pr, V, r->top));
                cJSON_AddItemToArray(masked, m);
            }
        }
    }
    if (r->trace) {
        cJSON *tr = cJSON_AddObjectToObject(o, "trace");
        cJSON_AddItemToObject(tr, "tokens",
                              moe_routing_trace_json(sm->model, sm->tok, ids, n, row0));
    }
    return o;
}

static cJSON *reply_head(const serve_model *sm) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", sm->name);
    cJSON_AddStringToObject(o, "family", sm->family);
    cJSON_AddStringToObject(o, "task", serve_task_name(sm->task));
    return o;
}

static void finish_reply(serve_model *sm, prep *p, cJSON *o, int batch, long fallback) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "tokens", (double)p->tokens);
    cJSON_AddNumberToObject(o, "batch_size", batch);
    serve_reply *rep = p->job->reply;
    serve_reply_json(rep, o);
    rep->tokens = p->tokens;
    if (fallback > 0)
        snprintf(rep->detail, sizeof rep->detail, "fallback=%ld", fallback);
    else
        rep->detail[0] = 0;
    serve_rate_add(sm, p->tokens);
}

static moe_status forward_transformer(serve_model *sm, prep *ps, int n, int B, int T) {
    const size_t BT = (size_t)B * T;
    int32_t *tokens = malloc(BT * sizeof *tokens);
    uint8_t *mask = sm->decoder ? NULL : malloc(BT);
    if (!tokens || (!sm->decoder && !mask)) {
        free(tokens);
        free(mask);
        return MOE_ERR_NOMEM;
    }
    const int32_t pad = sm->decoder ? 0 : sm->pad_id;
    for (size_t i = 0; i < BT; i++) tokens[i] = pad;
    if (mask) memset(mask, 0, BT);
    for (int q = 0; q < n; q++) {
        if (!ps[q].ok) continue;
        for (int i = 0; i < ps[q].n; i++) {
            size_t b = (size_t)(ps[q].seq0 + i);
            memcpy(tokens + b * T, ps[q].ids[i], (size_t)ps[q].len[i] * sizeof *tokens);
            if (mask) memset(mask + b * T, 1, (size_t)ps[q].len[i]);
        }
    }
    moe_batch batch = {.tokens = tokens, .pad_mask = mask, .B = B, .T = T};
    moe_status st = moe_model_forward_batch(sm->model, &batch, 0, NULL, &sm->arena, NULL, NULL);
    free(tokens);
    free(mask);
    return st;
}

static moe_status forward_dense(serve_model *sm, prep *ps, int n, int B) {
    const int F = sm->n_features;
    moe_real *x = malloc((size_t)B * F * sizeof *x);
    if (!x) return MOE_ERR_NOMEM;
    const int per_channel = sm->norm_channels > 0 ? F / sm->norm_channels : 1;
    for (int q = 0; q < n; q++) {
        if (!ps[q].ok) continue;
        const float *rows = ps[q].job->infer.rows;
        for (int i = 0; i < ps[q].n; i++) {
            moe_real *dst = x + (size_t)(ps[q].seq0 + i) * F;
            for (int f = 0; f < F; f++) {
                double v = rows[(size_t)i * F + f];
                if (sm->mean && sm->std) {
                    int s = sm->norm_channels > 0 ? f / per_channel : f;
                    v = (v - sm->mean[s]) / sm->std[s];
                }
                dst[f] = (moe_real)v;
            }
        }
    }
    moe_batch batch = {.B = B, .T = 1, .x = x};
    moe_status st = moe_model_forward_batch(sm->model, &batch, 0, NULL, &sm->arena, NULL, NULL);
    free(x);
    return st;
}

void serve_infer_batch(serve_model *sm, serve_job **jobs, int n) {
    prep *ps = calloc((size_t)n, sizeof *ps);
    if (!ps) {
        for (int q = 0; q < n; q++)
            serve_reply_error(sm, jobs[q]->reply, 503, "", "out of memory: try again later");
        return;
    }
    int B = 0, T = 1, batch = 0;
    for (int q = 0; q < n; q++) {
        ps[q].job = jobs[q];
        ps[q].ok = prepare(sm, &ps[q]) == 0;
        if (!ps[q].ok) continue;
        ps[q].seq0 = B;
        B += ps[q].n;
        batch++;
        for (int i = 0; sm->transformer && i < ps[q].n; i++)
            T = ps[q].len[i] > T ? ps[q].len[i] : T;
    }
    if (batch > 0) {
        moe_arena_reset(&sm->arena);
        double t0 = serve_now();
        moe_status st =
            sm->transformer ? forward_transformer(sm, ps, n, B, T) : forward_dense(sm, ps, n, B);
        double secs = serve_now() - t0;
        const char *lv[] = {sm->name};
        if (sm->metrics->batch_size) moe_metric_observe(sm->metrics->batch_size, lv, batch);
        if (sm->metrics->forward_s) moe_metric_observe(sm->metrics->forward_s, lv, secs);
        if (st && batch > 1) {
            /* prepare refuses what the forward would, so this is not
             * expected; still, one request must not fail the others: each
             * goes again alone, and only the one at fault gets the error */
            for (int q = 0; q < n; q++)
                if (ps[q].ok) serve_infer_batch(sm, &ps[q].job, 1);
            for (int q = 0; q < n; q++) prep_free(&ps[q]);
            free(ps);
            return;
        }
        const int V = sm->transformer ? sm->mc->vocab_size : 1;
        double *pr = malloc((size_t)V * sizeof *pr);
        if (!st && !pr) st = MOE_ERR_NOMEM;
        long row = 0; /* routing-statistics row: real tokens only under a padding mask */
        for (int q = 0; q < n; q++) {
            if (!ps[q].ok) continue;
            if (st) {
                serve_reply_error(sm, ps[q].job->reply, 500, "",
                                  "the forward of model %s failed on this request: %s", sm->name,
                                  moe_last_error());
                continue;
            }
            const serve_infer_request *r = &ps[q].job->infer;
            cJSON *o = reply_head(sm), *outs = cJSON_AddArrayToObject(o, "outputs");
            long fallback = 0;
            for (int i = 0; i < ps[q].n; i++) {
                const int b = ps[q].seq0 + i;
                if (!sm->transformer) {
                    cJSON *one = cJSON_CreateObject();
                    class_json(sm, one,
                               moe_model_class_logits(sm->model) + (size_t)b * sm->n_classes, 0);
                    cJSON_AddItemToArray(outs, one);
                    fallback += serve_count_routing(sm, b, 1);
                    continue;
                }
                const long row0 = sm->decoder ? (long)b * T : row;
                cJSON_AddItemToArray(
                    outs, sequence_json(sm, r, ps[q].ids[i], ps[q].len[i], b, T, row0, pr));
                fallback += serve_count_routing(sm, row0, ps[q].len[i]);
                row += ps[q].len[i];
            }
            if (serve_has_nonfinite(o)) {
                cJSON_Delete(o);
                serve_reply_error(sm, ps[q].job->reply, 500, "",
                                  "model %s gave non-finite outputs for this input (NaN or "
                                  "infinite weights or router scores); serve it with "
                                  "--fallback-expert E to send such tokens to one expert",
                                  sm->name);
                continue;
            }
            finish_reply(sm, &ps[q], o, batch, fallback);
        }
        free(pr);
    }
    for (int q = 0; q < n; q++) prep_free(&ps[q]);
    free(ps);
}
