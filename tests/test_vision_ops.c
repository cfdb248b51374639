/* Behaviour of the vision ops on hand-computed examples: convolution
 * values, padding, pooling ties and divisors, the batch-norm running
 * statistics (PyTorch's momentum rule with the unbiased variance), and the
 * agreement of the conv's separate code paths (depthwise loop vs gemm,
 * images in parallel vs one by one). */
#include "test_util.h"

#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

static moe_real *scratch_for(int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                             int groups) {
    size_t n = conv2d_scratch_elems(C, H, W, OC, KH, KW, stride, pad, groups);
    return calloc(n + 1, sizeof(moe_real));
}

static void test_out_size(void **state) {
    (void)state;
    assert_int_equal(conv2d_out_size(28, 3, 1, 1), 28);
    assert_int_equal(conv2d_out_size(28, 2, 2, 0), 14);
    assert_int_equal(conv2d_out_size(7, 2, 2, 0), 3); /* floor */
    assert_int_equal(conv2d_out_size(7, 3, 2, 1), 4);
    assert_int_equal(conv2d_out_size(5, 1, 2, 0), 3);
}

/* x = 1..9 on a 3x3 plane, w = [[1, 0], [0, -1]]: out = x[i][j] - x[i+1][j+1]. */
static void test_conv_by_hand(void **state) {
    (void)state;
    moe_real x[9], w[4] = {1, 0, 0, -1}, b = 0.5f, out[4];
    for (int i = 0; i < 9; i++) x[i] = (moe_real)(i + 1);
    moe_real *s = scratch_for(1, 3, 3, 1, 2, 2, 1, 0, 1);
    conv2d_forward(out, s, x, w, &b, 1, 1, 3, 3, 1, 2, 2, 1, 0, 1);
    for (int i = 0; i < 4; i++) assert_close(out[i], -3.5, 1e-6);
    free(s);
    /* padding 1, stride 2: windows start at -1 and 1; zeros outside */
    s = scratch_for(1, 3, 3, 1, 2, 2, 2, 1, 1);
    conv2d_forward(out, s, x, w, NULL, 1, 1, 3, 3, 1, 2, 2, 2, 1, 1);
    const double want[4] = {-1, -3, -7, 5 - 9};
    for (int i = 0; i < 4; i++) assert_close(out[i], want[i], 1e-6);
    /* backward: dinp[h][w] = sum over outputs reading it of w * dout */
    moe_real g[4] = {1, 2, 3, 4}, dx[9], dw[4] = {10, 10, 10, 10}, db = 100;
    conv2d_backward(dx, dw, &db, s, g, x, w, 1, 1, 3, 3, 1, 2, 2, 2, 1, 1);
    const double want_dx[9] = {-1, 0, -2, 0, 4, 0, -3, 0, -4};
    for (int i = 0; i < 9; i++) assert_close(dx[i], want_dx[i], 1e-6);
    /* dw[kh][kw] = sum_o g_o x[oh*2-1+kh][ow*2-1+kw]; parameter gradients add */
    const double want_dw[4] = {4 * 5, 3 * 4 + 4 * 6, 2 * 2 + 4 * 8, 1 * 1 + 2 * 3 + 3 * 7 + 4 * 9};
    for (int i = 0; i < 4; i++) assert_close(dw[i], 10 + want_dw[i], 1e-5);
    assert_close(db, 110, 1e-6);
    free(s);
}

/* A depthwise conv equals the dense conv whose weight is zero across
 * channels: the direct loop against the im2col + gemm path. */
static void check_depthwise(int N, int stride, int pad) {
    int C = 5, H = 7, W = 6, K = 3;
    int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
    long ni = (long)N * C * H * W, no = (long)N * C * OH * OW;
    moe_real *x = malloc(ni * sizeof *x), *wd = malloc(C * K * K * sizeof *wd);
    moe_real *wf = calloc((size_t)C * C * K * K, sizeof *wf), *b = malloc(C * sizeof *b);
    fill_uniform(x, ni, -1, 1, 7);
    fill_uniform(wd, C * K * K, -1, 1, 8);
    fill_uniform(b, C, -1, 1, 9);
    for (int c = 0; c < C; c++)
        memcpy(wf + ((long)c * C + c) * K * K, wd + c * K * K, K * K * sizeof *wf);
    moe_real *y1 = malloc(no * sizeof *y1), *y2 = malloc(no * sizeof *y2);
    moe_real *s = scratch_for(C, H, W, C, K, K, stride, pad, 1);
    moe_real *sd = scratch_for(C, H, W, C, K, K, stride, pad, C);
    conv2d_forward(y1, sd, x, wd, b, N, C, H, W, C, K, K, stride, pad, C);
    conv2d_forward(y2, s, x, wf, b, N, C, H, W, C, K, K, stride, pad, 1);
    for (long i = 0; i < no; i++) assert_close(y1[i], y2[i], 1e-5);
    moe_real *g = malloc(no * sizeof *g), *dx1 = malloc(ni * sizeof *dx1);
    moe_real *dx2 = malloc(ni * sizeof *dx2), *dw1 = calloc(C * K * K, sizeof *dw1);
    moe_real *dw2 = calloc((size_t)C * C * K * K, sizeof *dw2);
    moe_real *db1 = calloc(C, sizeof *db1), *db2 = calloc(C, sizeof *db2);
    fill_uniform(g, no, -1, 1, 10);
    conv2d_backward(dx1, dw1, db1, sd, g, x, wd, N, C, H, W, C, K, K, stride, pad, C);
    conv2d_backward(dx2, dw2, db2, s, g, x, wf, N, C, H, W, C, K, K, stride, pad, 1);
    for (long i = 0; i < ni; i++) assert_close(dx1[i], dx2[i], 1e-5);
    for (int c = 0; c < C; c++) {
        for (int k = 0; k < K * K; k++)
            assert_close(dw1[c * K * K + k], dw2[((long)c * C + c) * K * K + k], 1e-4);
        assert_close(db1[c], db2[c], 1e-4);
    }
    /* without dweight, the same dinp */
    conv2d_backward(dx2, NULL, NULL, sd, g, x, wd, N, C, H, W, C, K, K, stride, pad, C);
    for (long i = 0; i < ni; i++) assert_close(dx1[i], dx2[i], 0);
    /* without dinp, dweight still adds */
    conv2d_backward(NULL, dw1, NULL, sd, g, x, wd, N, C, H, W, C, K, K, stride, pad, C);
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K * K; k++)
            assert_close(dw1[c * K * K + k], 2 * dw2[((long)c * C + c) * K * K + k], 2e-4);
    free(x), free(wd), free(wf), free(b), free(y1), free(y2), free(s), free(sd), free(g), free(dx1);
    free(dx2), free(dw1), free(dw2), free(db1), free(db2);
}

static void test_depthwise_matches_dense(void **state) {
    (void)state;
    check_depthwise(3, 1, 1);
    check_depthwise(2, 2, 0);
    check_depthwise(1, 2, 1);
}

/* Images in parallel (N >= threads) give what one image at a time gives,
 * and the batch's dweight is the sum of the images' (dinp may be NULL). */
static void test_conv_batch_equals_images(void **state) {
    (void)state;
    int N = 5, C = 4, H = 9, W = 8, OC = 6, K = 3, stride = 1, pad = 1, groups = 2;
    int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
    long in_img = (long)C * H * W, out_img = (long)OC * OH * OW, nw = (long)OC * C / groups * K * K;
    moe_real *x = malloc(N * in_img * sizeof *x), *w = malloc(nw * sizeof *w), b[6];
    moe_real *g = malloc(N * out_img * sizeof *g);
    fill_uniform(x, N * in_img, -1, 1, 11);
    fill_uniform(w, nw, -1, 1, 12);
    fill_uniform(b, OC, -1, 1, 13);
    fill_uniform(g, N * out_img, -1, 1, 14);
    moe_real *s = scratch_for(C, H, W, OC, K, K, stride, pad, groups);
    moe_real *y = malloc(N * out_img * sizeof *y), *y1 = malloc(out_img * sizeof *y1);
    moe_real *dw = calloc(nw, sizeof *dw), *dw1 = calloc(nw, sizeof *dw1);
    moe_real *dx = malloc(N * in_img * sizeof *dx), *dx1 = malloc(in_img * sizeof *dx1);
    conv2d_forward(y, s, x, w, b, N, C, H, W, OC, K, K, stride, pad, groups);
    conv2d_backward(dx, dw, NULL, s, g, x, w, N, C, H, W, OC, K, K, stride, pad, groups);
    for (int n = 0; n < N; n++) {
        conv2d_forward(y1, s, x + n * in_img, w, b, 1, C, H, W, OC, K, K, stride, pad, groups);
        for (long i = 0; i < out_img; i++) assert_close(y1[i], y[n * out_img + i], 1e-5);
        conv2d_backward(dx1, dw1, NULL, s, g + n * out_img, x + n * in_img, w, 1, C, H, W, OC, K, K,
                        stride, pad, groups);
        for (long i = 0; i < in_img; i++) assert_close(dx1[i], dx[n * in_img + i], 1e-5);
    }
    for (long i = 0; i < nw; i++) assert_close(dw1[i], dw[i], 1e-4);
    /* parameter gradients only (first layer): dinp NULL */
    conv2d_backward(NULL, dw, NULL, s, g, x, w, N, C, H, W, OC, K, K, stride, pad, groups);
    for (long i = 0; i < nw; i++) assert_close(dw[i], 2 * dw1[i], 2e-4);
    /* input gradient only (frozen weights): dweight NULL */
    moe_real *dx2 = malloc(N * in_img * sizeof *dx2);
    conv2d_backward(dx2, NULL, NULL, s, g, x, w, N, C, H, W, OC, K, K, stride, pad, groups);
    for (long i = 0; i < N * in_img; i++) assert_close(dx2[i], dx[i], 0);
    free(dx2);
    free(x), free(w), free(g), free(s), free(y), free(y1), free(dw), free(dw1), free(dx), free(dx1);
}

static void test_maxpool_by_hand(void **state) {
    (void)state;
    /* 4x4 plane, 2x2 windows: a tie keeps the first index (row-major) */
    const moe_real x[16] = {1,  3,  0, 0,  /* */
                            3,  2,  0, -1, /* */
                            -5, -6, 7, 8,  /* */
                            -7, -8, 8, 2};
    moe_real out[4], dx[16];
    int32_t am[4];
    maxpool2d_forward(out, am, x, 1, 1, 4, 4, 2, 2, 0);
    const double want[4] = {3, 0, -5, 8};
    const int32_t want_am[4] = {1, 2, 8, 11};
    for (int i = 0; i < 4; i++) {
        assert_close(out[i], want[i], 0);
        assert_int_equal(am[i], want_am[i]);
    }
    const moe_real g[4] = {1, 2, 3, 4};
    maxpool2d_backward(dx, g, am, 1, 1, 4, 4, 2, 2, 0);
    for (int i = 0; i < 16; i++) {
        double wv = 0;
        for (int j = 0; j < 4; j++)
            if (want_am[j] == i) wv = g[j];
        assert_close(dx[i], wv, 0);
    }
    /* padding never wins: all-negative input, 3x3 windows, pad 1 */
    moe_real neg[9], o9[9];
    int32_t a9[9];
    for (int i = 0; i < 9; i++) neg[i] = (moe_real)(-1 - i);
    maxpool2d_forward(o9, a9, neg, 1, 1, 3, 3, 3, 1, 1);
    assert_close(o9[0], -1, 0);
    assert_close(o9[8], -5, 0); /* window rows 1-2, columns 1-2: max -5 */
    assert_int_equal(a9[8], 4);
    /* overlapping windows sharing a maximum add their gradients */
    moe_real ones[9];
    for (int i = 0; i < 9; i++) ones[i] = 1;
    maxpool2d_backward(dx, ones, a9, 1, 1, 3, 3, 3, 1, 1);
    assert_close(dx[0], 4, 0); /* x[0] = -1 is the max of the four windows touching it */
}

static void test_avgpool_by_hand(void **state) {
    (void)state;
    /* count_include_pad: a corner window of ones with padding 1 sums 4 of 9 */
    moe_real x[16], out[16], dx[16];
    for (int i = 0; i < 16; i++) x[i] = 1;
    avgpool2d_forward(out, x, 1, 1, 4, 4, 3, 1, 1);
    assert_close(out[0], 4.0 / 9, 1e-6);
    assert_close(out[1], 6.0 / 9, 1e-6);
    assert_close(out[5], 1, 1e-6);
    /* 2x2 stride 2: plain means; backward spreads g/4 */
    for (int i = 0; i < 16; i++) x[i] = (moe_real)i;
    avgpool2d_forward(out, x, 1, 1, 4, 4, 2, 2, 0);
    const double want[4] = {2.5, 4.5, 10.5, 12.5};
    for (int i = 0; i < 4; i++) assert_close(out[i], want[i], 1e-6);
    const moe_real g[4] = {4, 8, 12, 16};
    avgpool2d_backward(dx, g, 1, 1, 4, 4, 2, 2, 0);
    assert_close(dx[0], 1, 1e-6);
    assert_close(dx[7], 2, 1e-6);
    assert_close(dx[13], 3, 1e-6);
    assert_close(dx[15], 4, 1e-6);
    /* global: [N=1, C=2, S=3] */
    const moe_real y[6] = {1, 2, 6, -1, -2, 0};
    moe_real m[2], dy[6];
    global_avgpool_forward(m, y, 1, 2, 3);
    assert_close(m[0], 3, 1e-6);
    assert_close(m[1], -1, 1e-6);
    const moe_real gm[2] = {3, -6};
    global_avgpool_backward(dy, gm, 1, 2, 3);
    for (int i = 0; i < 6; i++) assert_close(dy[i], i < 3 ? 1 : -2, 1e-6);
}

/* [N=2, C=2, S=2]; channel 0 holds 1, 2, 3, 6 (mean 3, biased variance
 * 3.5, unbiased 14/3), channel 1 holds 0, 0, 4, 4 (mean 2, variance 4,
 * unbiased 16/3). */
static void test_batchnorm_running_stats(void **state) {
    (void)state;
    const moe_real x[8] = {1, 2, 0, 0, 3, 6, 4, 4};
    const moe_real w[2] = {2, 0.5f}, b[2] = {1, -1};
    moe_real rm[2] = {0.5f, -1}, rv[2] = {2, 1}, out[8], mean[2], rstd[2];
    batchnorm_forward(out, mean, rstd, rm, rv, x, w, b, 2, 2, 2, 1, 0.1f, 1e-5f);
    assert_close(mean[0], 3, 1e-6);
    assert_close(mean[1], 2, 1e-6);
    assert_close(rstd[0], 1 / sqrt(3.5 + 1e-5), 1e-6);
    assert_close(rstd[1], 1 / sqrt(4 + 1e-5), 1e-6);
    assert_close(rm[0], 0.9 * 0.5 + 0.1 * 3, 1e-6);
    assert_close(rm[1], 0.9 * -1 + 0.1 * 2, 1e-6);
    assert_close(rv[0], 0.9 * 2 + 0.1 * 14.0 / 3, 1e-6);
    assert_close(rv[1], 0.9 * 1 + 0.1 * 16.0 / 3, 1e-6);
    assert_close(out[0], (1 - 3) / sqrt(3.5 + 1e-5) * 2 + 1, 1e-5);
    assert_close(out[5], (6 - 3) / sqrt(3.5 + 1e-5) * 2 + 1, 1e-5);
    assert_close(out[2], (0 - 2) / sqrt(4 + 1e-5) * 0.5 - 1, 1e-5);
    /* a second step moves them again from where they are */
    batchnorm_forward(out, mean, rstd, rm, rv, x, w, b, 2, 2, 2, 1, 0.1f, 1e-5f);
    assert_close(rm[0], 0.9 * (0.9 * 0.5 + 0.1 * 3) + 0.1 * 3, 1e-6);
    /* inference uses (and reports) the running statistics, which stay put */
    moe_real rm0 = rm[0], rv0 = rv[0];
    batchnorm_forward(out, mean, rstd, rm, rv, x, w, b, 2, 2, 2, 0, 0.1f, 1e-5f);
    assert_close(rm[0], rm0, 0);
    assert_close(rv[0], rv0, 0);
    assert_close(mean[0], rm0, 0);
    assert_close(rstd[0], 1 / sqrt(rv0 + 1e-5), 1e-6);
    assert_close(out[4], (3 - rm0) / sqrt(rv0 + 1e-5) * 2 + 1, 1e-5);
    /* inference backward: dinp = w rstd dout */
    moe_real g[8] = {1, 1, 1, 1, 1, 1, 1, 1}, dx[8], dw[2] = {0, 0}, db[2] = {0, 0};
    batchnorm_backward(dx, dw, db, g, x, w, mean, rstd, 2, 2, 2, 0);
    assert_close(dx[0], 2 / sqrt(rv0 + 1e-5), 1e-5);
    assert_close(db[0], 4, 1e-6);
    /* training backward: a constant dout has zero input gradient */
    batchnorm_forward(out, mean, rstd, NULL, NULL, x, w, b, 2, 2, 2, 1, 0.1f, 1e-5f);
    batchnorm_backward(dx, NULL, NULL, g, x, w, mean, rstd, 2, 2, 2, 1);
    for (int i = 0; i < 8; i++) assert_close(dx[i], 0, 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_size),
        cmocka_unit_test(test_conv_by_hand),
        cmocka_unit_test(test_depthwise_matches_dense),
        cmocka_unit_test(test_conv_batch_equals_images),
        cmocka_unit_test(test_maxpool_by_hand),
        cmocka_unit_test(test_avgpool_by_hand),
        cmocka_unit_test(test_batchnorm_running_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
