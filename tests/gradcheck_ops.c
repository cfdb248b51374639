/* Finite-difference checks (double build) of every op's backward, for every
 * input and parameter gradient, through the scalar loss sum(out * r) with a
 * fixed random r (or the cross-entropy loss itself). */
#include "test_util.h"

#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXCHK 100000 /* sizes are small: check every entry */

/* Every context starts with this: the forward to run and the output it fills. */
typedef struct gc_base {
    void (*fwd)(void *ctx); /* recomputes out from the current inputs */
    moe_real *out;          /* [n] */
    const moe_real *r;      /* [n] loss weights */
    long n;
} gc_base;

static double gc_loss(void *ctx) {
    gc_base *b = ctx;
    b->fwd(ctx);
    return dot(b->out, b->r, b->n);
}

static unsigned long long next_seed = 1;

static moe_real *rnd(long n, double lo, double hi) {
    moe_real *x = malloc((size_t)n * sizeof *x);
    fill_uniform(x, n, lo, hi, next_seed++);
    return x;
}

static moe_real *zeros(long n) {
    return calloc((size_t)n, sizeof(moe_real));
}

/* ---- linear ---- */
typedef struct {
    gc_base b;
    moe_real *inp, *w, *bias;
    int N, C, OC;
} mm_ctx;

static void mm_fwd(void *p) {
    mm_ctx *c = p;
    matmul_forward(c->b.out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
}

static void check_matmul(int with_bias) {
    mm_ctx c = {.N = 6, .C = 5, .OC = 4};
    long no = (long)c.N * c.OC;
    c.inp = rnd(c.N * c.C, -1, 1);
    c.w = rnd(c.OC * c.C, -1, 1);
    c.bias = with_bias ? rnd(c.OC, -1, 1) : NULL;
    moe_real *r = rnd(no, -1, 1);
    c.b = (gc_base){mm_fwd, zeros(no), r, no};
    moe_real *dinp = zeros(c.N * c.C), *dw = zeros(c.OC * c.C), *db = zeros(c.OC);
    matmul_backward(dinp, dw, with_bias ? db : NULL, r, c.inp, c.w, c.N, c.C, c.OC);
    assert_int_equal(gradcheck("matmul dinp", c.inp, c.N * c.C, dinp, gc_loss, &c, MAXCHK), 0);
    assert_int_equal(gradcheck("matmul dweight", c.w, c.OC * c.C, dw, gc_loss, &c, MAXCHK), 0);
    if (with_bias)
        assert_int_equal(gradcheck("matmul dbias", c.bias, c.OC, db, gc_loss, &c, MAXCHK), 0);
    /* parameter gradients add: a second backward doubles them */
    moe_real w0 = dw[3];
    matmul_backward(NULL, dw, NULL, r, c.inp, c.w, c.N, c.C, c.OC);
    assert_true(fabs(dw[3] - 2 * w0) < 1e-12);
    free(c.inp), free(c.w), free(c.bias), free(r), free(c.b.out), free(dinp), free(dw), free(db);
}

static void test_matmul(void **state) {
    (void)state;
    check_matmul(1);
    check_matmul(0);
}

/* ---- embedding ---- */
typedef struct {
    gc_base b;
    moe_real *table;
    const int32_t *ids;
    int N, C;
} emb_ctx;

static void emb_fwd(void *p) {
    emb_ctx *c = p;
    embedding_forward(c->b.out, c->ids, c->table, c->N, c->C);
}

static void test_embedding(void **state) {
    (void)state;
    const int32_t ids[6] = {3, 0, 3, 6, 2, 3}; /* repeats must accumulate */
    emb_ctx c = {.ids = ids, .N = 6, .C = 3};
    int V = 7;
    long no = (long)c.N * c.C;
    c.table = rnd(V * c.C, -1, 1);
    moe_real *r = rnd(no, -1, 1), *dt = zeros(V * c.C);
    c.b = (gc_base){emb_fwd, zeros(no), r, no};
    embedding_backward(dt, r, ids, c.N, c.C);
    assert_int_equal(gradcheck("embedding dtable", c.table, V * c.C, dt, gc_loss, &c, MAXCHK), 0);
    free(c.table), free(r), free(dt), free(c.b.out);
}

/* ---- layernorm / rmsnorm ---- */
typedef struct {
    gc_base b;
    moe_real *inp, *w, *bias, *mean, *rstd;
    int N, C, rms;
} norm_ctx;

static void norm_fwd(void *p) {
    norm_ctx *c = p;
    if (c->rms)
        rmsnorm_forward(c->b.out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f);
    else
        layernorm_forward(c->b.out, c->mean, c->rstd, c->inp, c->w, c->bias, c->N, c->C, 1e-5f);
}

static void check_norm(int rms) {
    norm_ctx c = {.N = 4, .C = 8, .rms = rms};
    long n = (long)c.N * c.C;
    c.inp = rnd(n, -2, 2);
    c.w = rnd(c.C, 0.5, 1.5);
    c.bias = rnd(c.C, -1, 1);
    c.mean = zeros(c.N);
    c.rstd = zeros(c.N);
    moe_real *r = rnd(n, -1, 1), *dinp = zeros(n), *dw = zeros(c.C), *db = zeros(c.C);
    c.b = (gc_base){norm_fwd, zeros(n), r, n};
    norm_fwd(&c);
    if (rms)
        rmsnorm_backward(dinp, dw, r, c.inp, c.w, c.rstd, c.N, c.C);
    else
        layernorm_backward(dinp, dw, db, r, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
    assert_int_equal(
        gradcheck(rms ? "rmsnorm dinp" : "layernorm dinp", c.inp, n, dinp, gc_loss, &c, MAXCHK), 0);
    assert_int_equal(
        gradcheck(rms ? "rmsnorm dw" : "layernorm dw", c.w, c.C, dw, gc_loss, &c, MAXCHK), 0);
    if (!rms) assert_int_equal(gradcheck("layernorm db", c.bias, c.C, db, gc_loss, &c, MAXCHK), 0);
    free(c.inp), free(c.w), free(c.bias), free(c.mean), free(c.rstd), free(r), free(dinp);
    free(dw), free(db), free(c.b.out);
}

static void test_layernorm(void **state) {
    (void)state;
    check_norm(0);
}

static void test_rmsnorm(void **state) {
    (void)state;
    check_norm(1);
}

/* ---- rope ---- */
typedef struct {
    gc_base b;
    moe_real *inp;
    int B, T, H, hd, stride, pos0;
} rope_ctx;

static void rope_fwd(void *p) {
    rope_ctx *c = p;
    rope_forward(c->b.out, c->inp, c->B, c->T, c->H, c->hd, c->stride, c->pos0, 10000.0f);
}

static void check_rope(int extra, int pos0) {
    rope_ctx c = {.B = 2, .T = 5, .H = 4, .hd = 4, .pos0 = pos0};
    c.stride = c.H * c.hd + extra;
    long n = (long)c.B * c.T * c.stride;
    c.inp = rnd(n, -1, 1);
    moe_real *r = rnd(n, -1, 1), *dinp = zeros(n);
    c.b = (gc_base){rope_fwd, zeros(n), r, n};
    rope_backward(dinp, r, c.B, c.T, c.H, c.hd, c.stride, c.pos0, 10000.0f);
    assert_int_equal(gradcheck("rope dinp", c.inp, n, dinp, gc_loss, &c, MAXCHK), 0);
    /* in place inside a wider row leaves the other columns alone */
    moe_real *x = rnd(n, -1, 1), *x0 = malloc((size_t)n * sizeof *x);
    memcpy(x0, x, (size_t)n * sizeof *x);
    rope_forward(x, x, c.B, c.T, c.H, c.hd, c.stride, c.pos0, 10000.0f);
    rope_backward(x, x, c.B, c.T, c.H, c.hd, c.stride, c.pos0, 10000.0f);
    for (long i = 0; i < n; i++) assert_true(fabs(x[i] - x0[i]) < 1e-12);
    free(c.inp), free(r), free(dinp), free(c.b.out), free(x), free(x0);
}

static void test_rope(void **state) {
    (void)state;
    check_rope(0, 0);
    check_rope(5, 3);
}

/* ---- attention: q, k, v live in one fused buffer [B,T,(H+2KVH)*hd] ---- */
typedef struct {
    gc_base b;
    moe_real *qkv, *att;
    const uint8_t *pad;
    int B, T, H, KVH, hd, causal;
} att_ctx;

static void att_fwd(void *p) {
    att_ctx *c = p;
    int s = (c->H + 2 * c->KVH) * c->hd;
    moe_real *q = c->qkv, *k = q + c->H * c->hd, *v = k + c->KVH * c->hd;
    attention_forward(c->b.out, c->att, q, k, v, c->pad, c->B, c->T, c->H, c->KVH, c->hd, s, s,
                      c->causal);
}

static void check_attention(const char *name, int B, int T, int H, int KVH, int causal,
                            const uint8_t *pad, int max_checks) {
    att_ctx c = {.B = B, .T = T, .H = H, .KVH = KVH, .hd = 4, .causal = causal, .pad = pad};
    int s = (H + 2 * KVH) * c.hd;
    long n = (long)c.B * c.T * s, no = (long)c.B * c.T * H * c.hd, na = (long)c.B * H * c.T * c.T;
    c.qkv = rnd(n, -1, 1);
    c.att = zeros(na);
    moe_real *r = rnd(no, -1, 1), *dqkv = zeros(n), *datt = zeros(na);
    c.b = (gc_base){att_fwd, zeros(no), r, no};
    att_fwd(&c);
    moe_real *q = c.qkv, *k = q + H * c.hd, *v = k + KVH * c.hd;
    moe_real *dq = dqkv, *dk = dq + H * c.hd, *dv = dk + KVH * c.hd;
    attention_backward(dq, dk, dv, datt, r, q, k, v, c.att, c.B, c.T, H, KVH, c.hd, s, s, causal);
    assert_int_equal(gradcheck(name, c.qkv, n, dqkv, gc_loss, &c, max_checks), 0);
    free(c.qkv), free(c.att), free(r), free(dqkv), free(datt), free(c.b.out);
}

static void test_attention(void **state) {
    (void)state;
    /* batch 1 has its last two tokens padded; batch 0 only its first */
    const uint8_t pad[10] = {0, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    check_attention("attention causal MHA", 2, 5, 4, 4, 1, NULL, MAXCHK);
    check_attention("attention causal GQA", 2, 5, 4, 2, 1, NULL, MAXCHK);
    check_attention("attention bidirectional padded GQA", 2, 5, 4, 2, 0, pad, MAXCHK);
    check_attention("attention bidirectional padded MHA", 2, 5, 4, 4, 0, pad, MAXCHK);
    check_attention("attention causal padded MQA", 2, 5, 4, 1, 1, pad, MAXCHK);
    /* T spans several of the kernels' row blocks (64 forward, 128 backward);
     * 290 samples of 9600 is a stride of 33, which visits every q, k, v column */
    uint8_t longpad[300];
    for (int i = 0; i < 300; i++) longpad[i] = i % 150 < 140;
    check_attention("attention causal GQA, long", 2, 150, 4, 2, 1, NULL, 290);
    check_attention("attention bidirectional padded GQA, long", 2, 150, 4, 2, 0, longpad, 290);
}

/* ---- pointwise ---- */
typedef struct {
    gc_base b;
    moe_real *x, *y, *mask;
    int kind; /* 0 relu, 1 gelu, 2 silu, 3 swiglu, 4 dropout, 5 residual */
    long N;
} pw_ctx;

static void pw_fwd(void *p) {
    pw_ctx *c = p;
    moe_rng rng;
    switch (c->kind) {
    case 0:
        relu_forward(c->b.out, c->x, c->N);
        break;
    case 1:
        gelu_forward(c->b.out, c->x, c->N);
        break;
    case 2:
        silu_forward(c->b.out, c->x, c->N);
        break;
    case 3:
        swiglu_forward(c->b.out, c->x, c->y, c->N);
        break;
    case 4:
        moe_rng_seed(&rng, 99); /* the same mask every call */
        dropout_forward(c->b.out, c->mask, c->x, 0.3f, c->N, &rng);
        break;
    default:
        residual_forward(c->b.out, c->x, c->y, c->N);
        break;
    }
}

static void check_pointwise(const char *name, int kind) {
    pw_ctx c = {.kind = kind, .N = 40};
    c.x = rnd(c.N, -3, 3);
    c.y = rnd(c.N, -2, 2);
    c.mask = zeros(c.N);
    for (long i = 0; i < c.N; i++) /* stay away from relu's kink */
        if (fabs(c.x[i]) < 0.05) c.x[i] = 0.1;
    moe_real *r = rnd(c.N, -1, 1), *dx = zeros(c.N), *dy = zeros(c.N);
    c.b = (gc_base){pw_fwd, zeros(c.N), r, c.N};
    pw_fwd(&c);
    switch (kind) {
    case 0:
        relu_backward(dx, r, c.x, c.N);
        break;
    case 1:
        gelu_backward(dx, r, c.x, c.N);
        break;
    case 2:
        silu_backward(dx, r, c.x, c.N);
        break;
    case 3:
        swiglu_backward(dx, dy, r, c.x, c.y, c.N);
        break;
    case 4:
        dropout_backward(dx, r, c.mask, c.N);
        break;
    default:
        residual_backward(dx, dy, r, c.N);
        break;
    }
    assert_int_equal(gradcheck(name, c.x, c.N, dx, gc_loss, &c, MAXCHK), 0);
    if (kind == 3 || kind == 5)
        assert_int_equal(gradcheck(name, c.y, c.N, dy, gc_loss, &c, MAXCHK), 0);
    free(c.x), free(c.y), free(c.mask), free(r), free(dx), free(dy), free(c.b.out);
}

static void test_pointwise(void **state) {
    (void)state;
    check_pointwise("relu", 0);
    check_pointwise("gelu", 1);
    check_pointwise("silu", 2);
    check_pointwise("swiglu", 3);
    check_pointwise("dropout", 4);
    check_pointwise("residual", 5);
}

/* ---- cross-entropy: the loss is the op's own scalar, times scale ---- */
typedef struct {
    moe_real *logits, *probs, *tp, *w;
    const int32_t *targets;
    int N, V;
    float scale;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    int count;
    return c->scale * crossentropy_forward(c->probs, c->logits, c->targets, c->N, c->V, -1, &count);
}

static double ce_soft_loss(void *p) {
    ce_ctx *c = p;
    return c->scale * crossentropy_soft_forward(c->probs, c->logits, c->tp, c->w, c->N, c->V);
}

static void test_crossentropy_hard(void **state) {
    (void)state;
    const int32_t targets[6] = {2, -1, 0, 4, -1, 1};
    ce_ctx c = {.targets = targets, .N = 6, .V = 5, .scale = 2.5f};
    long n = (long)c.N * c.V;
    c.logits = rnd(n, -3, 3);
    c.probs = zeros(n);
    moe_real *d = zeros(n);
    int count;
    crossentropy_forward(c.probs, c.logits, targets, c.N, c.V, -1, &count);
    assert_int_equal(count, 4);
    crossentropy_backward(d, c.probs, targets, c.N, c.V, -1, count, c.scale);
    assert_int_equal(gradcheck("ce hard dlogits", c.logits, n, d, ce_loss, &c, MAXCHK), 0);
    free(c.logits), free(c.probs), free(d);
}

static void check_ce_soft(int weighted) {
    ce_ctx c = {.N = 6, .V = 5, .scale = 0.7f};
    long n = (long)c.N * c.V;
    c.logits = rnd(n, -3, 3);
    c.probs = zeros(n);
    c.tp = rnd(n, 0.01, 1);
    for (int i = 0; i < c.N; i++) { /* rows sum to 1 */
        double s = 0;
        for (int j = 0; j < c.V; j++) s += c.tp[i * c.V + j];
        for (int j = 0; j < c.V; j++) c.tp[i * c.V + j] /= s;
    }
    c.w = weighted ? rnd(c.N, 0, 2) : NULL;
    moe_real *d = zeros(n);
    crossentropy_soft_forward(c.probs, c.logits, c.tp, c.w, c.N, c.V);
    crossentropy_soft_backward(d, c.probs, c.tp, c.w, c.N, c.V, c.scale);
    assert_int_equal(gradcheck("ce soft dlogits", c.logits, n, d, ce_soft_loss, &c, MAXCHK), 0);
    free(c.logits), free(c.probs), free(c.tp), free(c.w), free(d);
}

static void test_crossentropy_soft(void **state) {
    (void)state;
    check_ce_soft(1);
    check_ce_soft(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_pointwise),
        cmocka_unit_test(test_crossentropy_hard),
        cmocka_unit_test(test_crossentropy_soft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
