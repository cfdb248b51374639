/* Finite-difference checks (double build) of the vision ops' backward
 * passes, for every input and parameter gradient, through the scalar loss
 * sum(out * r) with a fixed random r. Shapes cover stride 1 and 2, padding
 * 0, 1 and 2, 1x1, 3x3 and non-square kernels, groups 1, 2 and depthwise,
 * odd sizes, one image (the serial path) and several (images in
 * parallel), and batch norm in both modes with S = 1 and S > 1. */
#include "test_util.h"

#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>

#define MAXCHK 100000 /* sizes are small: check every entry */

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

static unsigned long long next_seed = 101;

static moe_real *rnd(long n, double lo, double hi) {
    moe_real *x = malloc((size_t)(n + 1) * sizeof *x);
    fill_uniform(x, n, lo, hi, next_seed++);
    return x;
}

static moe_real *zeros(long n) {
    return calloc((size_t)n + 1, sizeof(moe_real));
}

/* A buffer the backward must overwrite entirely: starts as garbage. */
static moe_real *garbage(long n) {
    moe_real *x = malloc((size_t)(n + 1) * sizeof *x);
    for (long i = 0; i < n; i++) x[i] = 1e30;
    return x;
}

/* ---- conv2d ---- */
typedef struct conv_case {
    int N, C, H, W, OC, KH, KW, stride, pad, groups, bias;
} conv_case;

typedef struct {
    gc_base b;
    conv_case s;
    moe_real *inp, *w, *bias, *scratch;
} conv_ctx;

static void conv_fwd(void *p) {
    conv_ctx *c = p;
    const conv_case *s = &c->s;
    conv2d_forward(c->b.out, c->scratch, c->inp, c->w, c->bias, s->N, s->C, s->H, s->W, s->OC,
                   s->KH, s->KW, s->stride, s->pad, s->groups);
}

static void check_conv(conv_case s) {
    int OH = conv2d_out_size(s.H, s.KH, s.stride, s.pad);
    int OW = conv2d_out_size(s.W, s.KW, s.stride, s.pad);
    long ni = (long)s.N * s.C * s.H * s.W, no = (long)s.N * s.OC * OH * OW;
    long nw = (long)s.OC * (s.C / s.groups) * s.KH * s.KW;
    conv_ctx c = {.s = s};
    c.inp = rnd(ni, -1, 1);
    c.w = rnd(nw, -1, 1);
    c.bias = s.bias ? rnd(s.OC, -1, 1) : NULL;
    c.scratch = zeros(
        (long)conv2d_scratch_elems(s.C, s.H, s.W, s.OC, s.KH, s.KW, s.stride, s.pad, s.groups));
    moe_real *r = rnd(no, -1, 1);
    c.b = (gc_base){conv_fwd, zeros(no), r, no};
    moe_real *dinp = garbage(ni), *dw = zeros(nw), *db = zeros(s.OC);
    conv_fwd(&c);
    conv2d_backward(dinp, dw, s.bias ? db : NULL, c.scratch, r, c.inp, c.w, s.N, s.C, s.H, s.W,
                    s.OC, s.KH, s.KW, s.stride, s.pad, s.groups);
    print_message("conv N=%d C=%d %dx%d OC=%d k=%dx%d s=%d p=%d g=%d\n", s.N, s.C, s.H, s.W, s.OC,
                  s.KH, s.KW, s.stride, s.pad, s.groups);
    assert_int_equal(gradcheck("conv2d dinp", c.inp, ni, dinp, gc_loss, &c, MAXCHK), 0);
    assert_int_equal(gradcheck("conv2d dweight", c.w, nw, dw, gc_loss, &c, MAXCHK), 0);
    if (s.bias)
        assert_int_equal(gradcheck("conv2d dbias", c.bias, s.OC, db, gc_loss, &c, MAXCHK), 0);
    free(c.inp), free(c.w), free(c.bias), free(c.scratch), free(r), free(c.b.out), free(dinp);
    free(dw), free(db);
}

static void test_conv2d(void **state) {
    (void)state;
    const conv_case cases[] = {
        /* N  C  H  W OC KH KW s  p  g  bias */
        {2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1}, /* 3x3 same padding */
        {1, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1}, /* one image: the serial path */
        {2, 4, 7, 5, 6, 3, 3, 2, 1, 2, 1}, /* stride 2, odd sizes, 2 groups */
        {3, 2, 6, 7, 3, 3, 3, 2, 0, 1, 0}, /* stride 2, no padding, no bias */
        {2, 4, 5, 5, 6, 1, 1, 1, 0, 1, 1}, /* 1x1: the image is its columns */
        {2, 4, 5, 7, 6, 1, 1, 2, 0, 2, 1}, /* 1x1 stride 2, 2 groups */
        {2, 3, 4, 5, 2, 3, 3, 1, 2, 1, 1}, /* padding wider than the kernel's reach */
        {2, 3, 6, 5, 4, 3, 2, 1, 1, 1, 1}, /* non-square kernel */
        {3, 4, 6, 6, 4, 3, 3, 1, 1, 4, 1}, /* depthwise */
        {2, 3, 7, 7, 3, 3, 3, 2, 0, 3, 0}, /* depthwise, stride 2, no padding */
        {1, 5, 5, 4, 5, 3, 3, 2, 1, 5, 1}, /* depthwise, one image, stride 2 */
        {2, 3, 4, 5, 3, 3, 3, 1, 2, 3, 1}, /* depthwise, padding 2 */
        {2, 4, 5, 6, 4, 3, 2, 2, 1, 4, 1}, /* depthwise, non-square, stride 2 */
        {2, 3, 4, 5, 3, 1, 1, 1, 0, 3, 1}, /* depthwise 1x1 */
        {2, 2, 5, 5, 4, 3, 3, 1, 1, 2, 1}, /* groups == C, OC = 2C: general path */
        {2, 1, 7, 7, 3, 3, 3, 1, 1, 1, 1}, /* one input channel (the first layer) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_conv(cases[i]);
}

/* ---- pooling ---- */
typedef struct {
    gc_base b;
    moe_real *inp;
    int32_t *argmax;
    int N, C, H, W, K, stride, pad, kind; /* kind 0 max, 1 avg, 2 global */
} pool_ctx;

static void pool_fwd(void *p) {
    pool_ctx *c = p;
    if (c->kind == 0)
        maxpool2d_forward(c->b.out, c->argmax, c->inp, c->N, c->C, c->H, c->W, c->K, c->stride,
                          c->pad);
    else if (c->kind == 1)
        avgpool2d_forward(c->b.out, c->inp, c->N, c->C, c->H, c->W, c->K, c->stride, c->pad);
    else
        global_avgpool_forward(c->b.out, c->inp, c->N, c->C, c->H * c->W);
}

static void check_pool(int kind, int N, int C, int H, int W, int K, int stride, int pad) {
    pool_ctx c = {
        .N = N, .C = C, .H = H, .W = W, .K = K, .stride = stride, .pad = pad, .kind = kind};
    long ni = (long)N * C * H * W, no = (long)N * C;
    if (kind < 2)
        no *= (long)conv2d_out_size(H, K, stride, pad) * conv2d_out_size(W, K, stride, pad);
    c.inp = rnd(ni, -1, 1);
    c.argmax = malloc((size_t)no * sizeof *c.argmax);
    moe_real *r = rnd(no, -1, 1), *dinp = garbage(ni);
    c.b = (gc_base){pool_fwd, zeros(no), r, no};
    pool_fwd(&c);
    if (kind == 0)
        maxpool2d_backward(dinp, r, c.argmax, N, C, H, W, K, stride, pad);
    else if (kind == 1)
        avgpool2d_backward(dinp, r, N, C, H, W, K, stride, pad);
    else
        global_avgpool_backward(dinp, r, N, C, H * W);
    const char *name[] = {"maxpool2d dinp", "avgpool2d dinp", "global_avgpool dinp"};
    print_message("%s N=%d C=%d %dx%d k=%d s=%d p=%d\n", name[kind], N, C, H, W, K, stride, pad);
    assert_int_equal(gradcheck(name[kind], c.inp, ni, dinp, gc_loss, &c, MAXCHK), 0);
    free(c.inp), free(c.argmax), free(r), free(dinp), free(c.b.out);
}

static void test_pool(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        check_pool(kind, 2, 3, 6, 6, 2, 2, 0); /* the CNNs' 2x2 pool */
        check_pool(kind, 2, 2, 7, 5, 2, 2, 0); /* odd sizes drop the last row/column */
        check_pool(kind, 2, 2, 7, 6, 3, 2, 1); /* overlapping windows, padding */
        check_pool(kind, 1, 3, 5, 5, 3, 1, 1); /* stride 1 */
        check_pool(kind, 2, 2, 6, 7, 2, 2, 1); /* padding 1 with k 2 */
    }
    check_pool(2, 2, 3, 5, 7, 0, 0, 0);
    check_pool(2, 3, 4, 1, 1, 0, 0, 0);
}

/* ---- batch norm ---- */
typedef struct {
    gc_base b;
    moe_real *inp, *w, *bias, *mean, *rstd, *rmean, *rvar;
    int N, C, S, training;
} bn_ctx;

static void bn_fwd(void *p) {
    bn_ctx *c = p;
    /* training: no running statistics, so repeated forwards change nothing */
    batchnorm_forward(c->b.out, c->mean, c->rstd, c->training ? NULL : c->rmean,
                      c->training ? NULL : c->rvar, c->inp, c->w, c->bias, c->N, c->C, c->S,
                      c->training, 0.1f, 1e-5f);
}

static void check_bn(int N, int C, int S, int training, int affine) {
    bn_ctx c = {.N = N, .C = C, .S = S, .training = training};
    long n = (long)N * C * S;
    c.inp = rnd(n, -2, 3);
    c.w = affine ? rnd(C, 0.5, 1.5) : NULL;
    c.bias = affine ? rnd(C, -1, 1) : NULL;
    c.rmean = rnd(C, -0.5, 0.5);
    c.rvar = rnd(C, 0.5, 2);
    c.mean = zeros(C);
    c.rstd = zeros(C);
    moe_real *r = rnd(n, -1, 1), *dinp = garbage(n), *dw = zeros(C), *db = zeros(C);
    c.b = (gc_base){bn_fwd, zeros(n), r, n};
    bn_fwd(&c);
    batchnorm_backward(dinp, affine ? dw : NULL, affine ? db : NULL, r, c.inp, c.w, c.mean, c.rstd,
                       N, C, S, training);
    print_message("batchnorm N=%d C=%d S=%d training=%d affine=%d\n", N, C, S, training, affine);
    assert_int_equal(gradcheck("batchnorm dinp", c.inp, n, dinp, gc_loss, &c, MAXCHK), 0);
    if (affine) {
        assert_int_equal(gradcheck("batchnorm dweight", c.w, C, dw, gc_loss, &c, MAXCHK), 0);
        assert_int_equal(gradcheck("batchnorm dbias", c.bias, C, db, gc_loss, &c, MAXCHK), 0);
    }
    free(c.inp), free(c.w), free(c.bias), free(c.rmean), free(c.rvar), free(c.mean), free(c.rstd);
    free(r), free(dinp), free(dw), free(db), free(c.b.out);
}

static void test_batchnorm(void **state) {
    (void)state;
    for (int training = 1; training >= 0; training--) {
        check_bn(6, 5, 1, training, 1);  /* BatchNorm1d */
        check_bn(5, 40, 1, training, 1); /* more channels than one block */
        check_bn(3, 4, 10, training, 1); /* BatchNorm2d, S = H*W */
        check_bn(2, 3, 3, training, 1);  /* short runs: blocked channels */
        check_bn(4, 3, 9, training, 0);  /* no affine parameters */
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_batchnorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
