/* GPU: fused (flash-style) attention against the CPU reference
 * attention_forward/attention_backward (ops.h), in fp32 and bf16, on fresh
 * random inputs. q, k, v live in one fused qkv buffer as the transformer
 * lays them out (token stride (H + 2 KVH) hd, plus extra columns in some
 * cases), and dq, dk, dv are written into one fused dqkv buffer the same
 * way. The saved lse is checked against a double-precision log-sum-exp
 * computed here from q and k. Skips without a GPU. */
#include "cuda_test.h"
#include "ops/ops.h"

#include <string.h>

static moe_rng rng;

enum { PAD_NONE, PAD_EDGES, PAD_SPARSE };

typedef struct att_case {
    int B, T, H, KVH, hd, causal;
    int pad;  /* PAD_*: how pad_mask is filled (PAD_NONE: NULL) */
    int xtra; /* columns past v in each fused row (q_stride > (H + 2 KVH) hd) */
} att_case;

/* PAD_EDGES: sequence 0 pads its first token and its last 5 (so under a
 * causal mask row 0 has no key at all), the last sequence (B > 1) is all
 * padding. PAD_SPARSE: every token t % 7 == 3 is padding. */
static void fill_pad(uint8_t *pad, int B, int T, int kind) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            uint8_t real = 1;
            if (kind == PAD_EDGES)
                real = (b == B - 1 && B > 1) ? 0 : !(b == 0 && (t == 0 || t >= T - 5));
            else if (kind == PAD_SPARSE)
                real = t % 7 != 3;
            pad[(long)b * T + t] = real;
        }
}

/* lse [B,H,T] in double from the (rounded) fused qkv, as the forward must
 * save it: log sum_j exp(scale q.k_j) over the unmasked keys, -inf when
 * there are none. */
static void reference_lse(float *lse, const float *qkv, const uint8_t *pad, const att_case *c,
                          int Q) {
    int B = c->B, T = c->T, H = c->H, KVH = c->KVH, hd = c->hd;
    double scale = 1.0 / sqrt((double)hd);
    double *s = malloc((size_t)T * sizeof *s);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *qr = qkv + ((long)b * T + t) * Q + (long)h * hd;
                double mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    int masked = (c->causal && j > t) || (pad && !pad[(long)b * T + j]);
                    if (masked) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    const float *kr = qkv + ((long)b * T + j) * Q + (long)(H + h / (H / KVH)) * hd;
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += (double)qr[d] * kr[d];
                    s[j] = dot * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double l = -INFINITY;
                if (mx != -INFINITY) {
                    double sum = 0;
                    for (int j = 0; j < T; j++)
                        if (s[j] != -INFINITY) sum += exp(s[j] - mx);
                    l = mx + log(sum);
                }
                lse[((long)b * H + h) * T + t] = (float)l;
            }
    free(s);
}

/* Columns col0 .. col0+n of each of the rows of a [rows, ld] buffer. */
static float *columns(const float *x, long rows, int ld, int col0, int n) {
    float *out = malloc((size_t)rows * n * sizeof *out);
    for (long r = 0; r < rows; r++) memcpy(out + r * n, x + r * ld + col0, (size_t)n * 4);
    return out;
}

static void check_attention(moe_dtype dt, const att_case *c) {
    const int B = c->B, T = c->T, H = c->H, KVH = c->KVH, hd = c->hd;
    const int Q = (H + 2 * KVH) * hd + c->xtra, C = H * hd;
    const long ntok = (long)B * T, nqkv = ntok * Q, nout = ntok * C, nrow = (long)B * H * T;
    const size_t es = moe_dtype_size(dt);

    float *qkv = malloc(nqkv * 4), *dout = malloc(nout * 4);
    cuda_test_randn(qkv, nqkv, 1, &rng);
    cuda_test_randn(dout, nout, 1, &rng);
    cuda_test_round(qkv, nqkv, dt);
    cuda_test_round(dout, nout, dt);
    uint8_t *pad = NULL;
    if (c->pad != PAD_NONE) {
        pad = malloc((size_t)ntok);
        fill_pad(pad, B, T, c->pad);
    }

    /* CPU reference on the same rounded inputs */
    float *out = malloc(nout * 4), *att = malloc((size_t)nrow * T * 4);
    float *datt = malloc((size_t)nrow * T * 4), *dqkv = calloc((size_t)nqkv, 4);
    float *lse = malloc(nrow * 4);
    const float *q = qkv, *k = qkv + C, *v = qkv + C + KVH * hd;
    attention_forward(out, att, q, k, v, pad, B, T, H, KVH, hd, Q, Q, c->causal);
    attention_backward(dqkv, dqkv + C, dqkv + C + KVH * hd, datt, dout, q, k, v, att, B, T, H, KVH,
                       hd, Q, Q, c->causal);
    reference_lse(lse, qkv, pad, c, Q);

    /* GPU: outputs poisoned (NaN) so anything left unwritten shows */
    char *gqkv = cuda_test_upload(qkv, nqkv, dt);
    void *gdout = cuda_test_upload(dout, nout, dt);
    void *gout = cuda_test_poisoned(nout, dt);
    float *glse = cuda_test_poisoned(nrow, MOE_DT_F32);
    char *gdqkv = cuda_test_poisoned(nqkv, dt);
    size_t sbytes = moe_cuda_attention_scratch(B, T, H, KVH, hd);
    void *gscratch = cuda_test_poisoned((long)(sbytes + 3) / 4, MOE_DT_F32);
    uint8_t *gpad = NULL;
    if (pad) {
        CUDA_OK(moe_cuda_alloc(cuda_test_ctx, (void **)&gpad, (size_t)ntok));
        CUDA_OK(moe_cuda_upload(cuda_test_ctx, gpad, pad, (size_t)ntok));
    }
    const char *gq = gqkv, *gk = gqkv + (size_t)C * es, *gv = gqkv + (size_t)(C + KVH * hd) * es;
    CUDA_OK(moe_cuda_attention_forward(cuda_test_ctx, dt, gout, glse, gq, gk, gv, gpad, B, T, H,
                                       KVH, hd, Q, Q, c->causal));
    CUDA_OK(moe_cuda_attention_backward(
        cuda_test_ctx, dt, gdqkv, gdqkv + (size_t)C * es, gdqkv + (size_t)(C + KVH * hd) * es,
        gdout, gout, gq, gk, gv, glse, gpad, B, T, H, KVH, hd, Q, Q, c->causal, gscratch));
    CUDA_OK(moe_cuda_sync(cuda_test_ctx));
    float *hout = cuda_test_download(gout, nout, dt);
    float *hlse = cuda_test_download(glse, nrow, MOE_DT_F32);
    float *hdqkv = cuda_test_download(gdqkv, nqkv, dt);
    /* No atomics: a second backward gives the same bits. */
    char *gdqkv2 = cuda_test_poisoned(nqkv, dt);
    CUDA_OK(moe_cuda_attention_backward(
        cuda_test_ctx, dt, gdqkv2, gdqkv2 + (size_t)C * es, gdqkv2 + (size_t)(C + KVH * hd) * es,
        gdout, gout, gq, gk, gv, glse, gpad, B, T, H, KVH, hd, Q, Q, c->causal, gscratch));
    float *hdqkv2 = cuda_test_download(gdqkv2, nqkv, dt);
    for (long i = 0; i < nqkv; i++)
        if (memcmp(&hdqkv[i], &hdqkv2[i], 4) != 0)
            fail_msg("dqkv [%ld]: %g then %g: the backward is not deterministic", i, hdqkv[i],
                     hdqkv2[i]);
    free(hdqkv2);
    moe_cuda_free(cuda_test_ctx, gdqkv2);

    printf(" attention %s B=%d T=%d H=%d KVH=%d hd=%d causal=%d pad=%d stride=%d\n",
           moe_dtype_name(dt), B, T, H, KVH, hd, c->causal, c->pad, Q);

    /* Fully masked rows: lse -inf, output and dq rows exactly 0. */
    long masked_rows = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                long i = ((long)b * H + h) * T + t;
                if (!isinf(lse[i])) continue;
                masked_rows++;
                if (!(isinf(hlse[i]) && hlse[i] < 0))
                    fail_msg("lse (b=%d h=%d t=%d) is %g, want -inf (no key)", b, h, t, hlse[i]);
                hlse[i] = lse[i] = 0; /* compared below as 0 */
                long tok = (long)b * T + t;
                for (int d = 0; d < hd; d++) {
                    if (hout[tok * C + (long)h * hd + d] != 0)
                        fail_msg("out (b=%d t=%d h=%d d=%d) is %g, want 0 (no key)", b, t, h, d,
                                 hout[tok * C + (long)h * hd + d]);
                    if (hdqkv[tok * Q + (long)h * hd + d] != 0)
                        fail_msg("dq (b=%d t=%d h=%d d=%d) is %g, want 0 (no key)", b, t, h, d,
                                 hdqkv[tok * Q + (long)h * hd + d]);
                }
            }
    /* Padded keys: dk and dv rows exactly 0. */
    for (long tok = 0; pad && tok < ntok; tok++)
        for (int d = C; pad[tok] == 0 && d < C + 2 * KVH * hd; d++)
            if (hdqkv[tok * Q + d] != 0)
                fail_msg("d%c of padded token %ld (column %d) is %g, want 0",
                         d < C + KVH * hd ? 'k' : 'v', tok, d, hdqkv[tok * Q + d]);
    /* Columns past v: never written (still the NaN poison). */
    for (long tok = 0; tok < ntok; tok++)
        for (int d = Q - c->xtra; d < Q; d++)
            if (!isnan(hdqkv[tok * Q + d]))
                fail_msg("dqkv column %d of token %ld (past dv) was written: %g", d, tok,
                         hdqkv[tok * Q + d]);
    printf("  fully masked (b,h,t) rows: %ld of %ld\n", masked_rows, nrow);

    const double bout = cuda_test_bound(dt, 1e-5, 2e-2), bgrad = cuda_test_bound(dt, 1e-5, 2e-2);
    cuda_assert_close("out", hout, out, nout, bout);
    cuda_assert_close("lse (vs double)", hlse, lse, nrow, 1e-5); /* fp32 from the same inputs */
    const char *names[3] = {"dq", "dk", "dv"};
    const int col0[3] = {0, C, C + KVH * hd}, width[3] = {C, KVH * hd, KVH * hd};
    for (int i = 0; i < 3; i++) {
        float *got = columns(hdqkv, ntok, Q, col0[i], width[i]);
        float *want = columns(dqkv, ntok, Q, col0[i], width[i]);
        if (T == 1 && i < 2) {
            /* one key per query: P = 1, dS = P (dP - D) = 0 up to rounding,
             * so dq and dk are ~0 and only an absolute bound makes sense */
            for (long e = 0; e < ntok * width[i]; e++)
                if (!(fabsf(got[e]) <= 1e-4f))
                    fail_msg("%s [%ld] = %g, want ~0 (T = 1)", names[i], e, got[e]);
            printf("  %-40s all |x| <= 1e-4 (T = 1)\n", names[i]);
        } else {
            cuda_assert_close(names[i], got, want, ntok * width[i], bgrad);
        }
        free(got), free(want);
    }

    moe_cuda_free(cuda_test_ctx, gqkv), moe_cuda_free(cuda_test_ctx, gdout);
    moe_cuda_free(cuda_test_ctx, gout), moe_cuda_free(cuda_test_ctx, glse);
    moe_cuda_free(cuda_test_ctx, gdqkv), moe_cuda_free(cuda_test_ctx, gscratch);
    moe_cuda_free(cuda_test_ctx, gpad);
    float *hs[] = {qkv, dout, out, att, datt, dqkv, lse, hout, hlse, hdqkv};
    for (int i = 0; i < 10; i++) free(hs[i]);
    free(pad);
}

static const att_case cases[] = {
    /* B, T, H, KVH, hd, causal, pad, xtra */
    {2, 33, 4, 2, 16, 1, PAD_EDGES, 0},   /* GQA, causal, padding, a fully padded sequence */
    {2, 33, 4, 2, 16, 0, PAD_EDGES, 8},   /* the same, bidirectional */
    {1, 130, 8, 8, 64, 0, PAD_SPARSE, 0}, /* three query tiles, the last of 2 rows */
    {1, 130, 8, 8, 64, 0, PAD_NONE, 0},   /* no mask */
    {3, 1, 2, 1, 8, 1, PAD_NONE, 0},      /* one token */
    {1, 257, 2, 1, 128, 1, PAD_NONE, 0},  /* largest head, a 1-row last tile */
    {2, 70, 6, 2, 40, 1, PAD_SPARSE, 3},  /* hd not a multiple of 32, odd stride */
    {1, 64, 3, 3, 96, 0, PAD_NONE, 5},    /* one full tile, hd = 3 x 32 */
    {2, 100, 4, 1, 128, 0, PAD_EDGES, 0}, /* 4 query heads share one kv head */
};

static void test_attention_f32(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_attention(MOE_DT_F32, &cases[i]);
}

static void test_attention_bf16(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_attention(MOE_DT_BF16, &cases[i]);
}

/* Shapes the kernels do not take: MOE_ERR_INVALID, nothing launched. */
static void test_attention_bad_args(void **state) {
    (void)state;
    void *buf, *scratch;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &buf, 1 << 16));
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &scratch, 1 << 12));
    float *lse = buf;
    struct {
        int H, KVH, hd, q_stride, kv_stride;
    } bad[] = {
        {2, 1, 12, 4 * 12, 2 * 12},    /* hd not a multiple of 8 */
        {2, 1, 136, 4 * 136, 2 * 136}, /* hd > 128 */
        {2, 1, 0, 64, 64},             /* hd = 0 */
        {3, 2, 16, 7 * 16, 7 * 16},    /* H % KVH != 0 */
        {2, 1, 16, 16, 2 * 16},        /* q_stride < H * hd */
        {2, 2, 16, 6 * 16, 16},        /* kv_stride < KVH * hd */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int H = bad[i].H, KVH = bad[i].KVH, hd = bad[i].hd;
        int qs = bad[i].q_stride, kvs = bad[i].kv_stride;
        for (int dt = 0; dt < 2; dt++) {
            moe_status st =
                moe_cuda_attention_forward(cuda_test_ctx, (moe_dtype)dt, buf, lse, buf, buf, buf,
                                           NULL, 1, 2, H, KVH, hd, qs, kvs, 1);
            assert_int_equal(st, MOE_ERR_INVALID);
            st = moe_cuda_attention_backward(cuda_test_ctx, (moe_dtype)dt, buf, buf, buf, buf, buf,
                                             buf, buf, buf, lse, NULL, 1, 2, H, KVH, hd, qs, kvs, 1,
                                             scratch);
            assert_int_equal(st, MOE_ERR_INVALID);
        }
    }
    CUDA_OK(moe_cuda_sync(cuda_test_ctx)); /* nothing was launched, nothing faulted */
    moe_cuda_free(cuda_test_ctx, buf), moe_cuda_free(cuda_test_ctx, scratch);
}

int main(void) {
    cuda_test_init_or_skip();
    cuda_test_seed(&rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_bad_args),
        cmocka_unit_test(test_attention_f32),
        cmocka_unit_test(test_attention_bf16),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    moe_cuda_destroy(cuda_test_ctx);
    return rc;
}
