/* GPU: the MoE launchers (router.cu, dispatch.cu, grouped_gemm.cu) against
 * double-precision host loops written here from the definitions in
 * cuda_ops.h (router.c, capacity.c, dispatch.c, combine.c, aux_loss.c for
 * softmax scores without noise). Integer outputs must match exactly; the
 * router backward is checked against central finite differences of the
 * scalar loss it differentiates. Skips without a GPU. */
#include "cuda_test.h"

#include <limits.h>
#include <string.h>

static moe_rng rng;

/* ---- small helpers -------------------------------------------------------- */

static int32_t *upload_ints(const int32_t *h, long n) {
    void *d;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &d, (size_t)(n ? n : 1) * 4));
    if (n) CUDA_OK(moe_cuda_upload(cuda_test_ctx, d, h, (size_t)n * 4));
    CUDA_OK(moe_cuda_sync(cuda_test_ctx));
    return d;
}

/* n ints on the device, every byte 0xa5 (a large negative value that no
 * kernel writes: not -1, which is row_of's "dropped"), so unwritten entries
 * show. */
static int32_t *poisoned_ints(long n) {
    int32_t *h = malloc((size_t)(n ? n : 1) * 4);
    memset(h, 0xa5, (size_t)(n ? n : 1) * 4);
    int32_t *d = upload_ints(h, n ? n : 1);
    free(h);
    return d;
}

static int32_t *download_ints(const int32_t *d, long n) {
    int32_t *h = malloc((size_t)(n ? n : 1) * 4);
    if (n) CUDA_OK(moe_cuda_download(cuda_test_ctx, h, d, (size_t)n * 4));
    return h;
}

static void assert_ints_equal(const char *what, const int32_t *got, const int32_t *want, long n) {
    for (long i = 0; i < n; i++)
        if (got[i] != want[i]) {
            print_error("%s: element %ld is %d, expected %d\n", what, i, got[i], want[i]);
            fail();
        }
    printf("  %-40s n=%-9ld exact\n", what, n);
}

static void dfree(void *p) {
    moe_cuda_free(cuda_test_ctx, p);
}

/* ---- router --------------------------------------------------------------- */

/* Host router of one token in double: scores, lse, chosen (best first,
 * ties to the lower index, as top_n in router.c) and weights. */
static void ref_route(double *s, double *lse, int *ch, double *w, const float *l, int E, int k,
                      int tbs, int renorm) {
    double m = -INFINITY, z = 0;
    for (int e = 0; e < E; e++) m = l[e] > m ? l[e] : m;
    for (int e = 0; e < E; e++) z += exp(l[e] - m);
    *lse = m + log(z);
    for (int e = 0; e < E; e++) s[e] = exp(l[e] - m) / z;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int used = 0;
            for (int q = 0; q < j; q++) used |= ch[q] == e;
            if (!used && (best < 0 || l[e] > l[best])) best = e;
        }
        ch[j] = best;
    }
    if (tbs) {
        double m0 = l[ch[0]], zz = 0;
        for (int j = 0; j < k; j++) zz += exp(l[ch[j]] - m0);
        for (int j = 0; j < k; j++) w[j] = exp(l[ch[j]] - m0) / zz;
        return;
    }
    double S = 0;
    for (int j = 0; j < k; j++) S += s[ch[j]];
    for (int j = 0; j < k; j++) w[j] = renorm ? s[ch[j]] / S : s[ch[j]];
}

/* The per-token loss the router backward differentiates, the top-k choice
 * held fixed (ch): sum_j dw_j w_j + sum_e dP_e s_e + dz lse^2. */
static double token_loss(const double *l, const int *ch, const float *dw, const float *dP,
                         double dz, int E, int k, int tbs, int renorm) {
    double m = -INFINITY, z = 0;
    for (int e = 0; e < E; e++) m = l[e] > m ? l[e] : m;
    for (int e = 0; e < E; e++) z += exp(l[e] - m);
    double lse = m + log(z), L = dz * lse * lse;
    if (dP)
        for (int e = 0; e < E; e++) L += dP[e] * exp(l[e] - lse);
    if (tbs) {
        double zz = 0;
        for (int j = 0; j < k; j++) zz += exp(l[ch[j]] - l[ch[0]]);
        for (int j = 0; j < k; j++) L += dw[j] * exp(l[ch[j]] - l[ch[0]]) / zz;
        return L;
    }
    double S = 0;
    for (int j = 0; j < k; j++) S += exp(l[ch[j]] - lse);
    for (int j = 0; j < k; j++) L += dw[j] * exp(l[ch[j]] - lse) / (renorm ? S : 1);
    return L;
}

static void check_router(int T, int E, int k, int tbs, int renorm, int with_dp_dz) {
    const long TE = (long)T * E, TK = (long)T * k;
    float *l = malloc(TE * 4);
    cuda_test_randn(l, TE, 2.0f, &rng);
    /* exact ties: every 3rd token copies one logit onto another expert,
     * every 7th makes its first two logits equal maxima */
    for (int t = 0; t < T && E > 1; t++) {
        float *lt = l + (long)t * E;
        if (t % 3 == 0) lt[moe_rng_below(&rng, E)] = lt[moe_rng_below(&rng, E)];
        if (t % 7 == 0) lt[0] = lt[1] = 5.0f;
    }
    float *dw = malloc(TK * 4), *dP = malloc(E * 4), dz = 0.37f;
    cuda_test_randn(dw, TK, 1, &rng);
    cuda_test_randn(dP, E, 1, &rng);

    float *gl = cuda_test_upload(l, TE, MOE_DT_F32);
    float *gs = cuda_test_poisoned(TE, MOE_DT_F32), *glse = cuda_test_poisoned(T, MOE_DT_F32);
    float *gw = cuda_test_poisoned(TK, MOE_DT_F32), *gps = cuda_test_poisoned(E, MOE_DT_F32);
    float *gz = cuda_test_poisoned(1, MOE_DT_F32);
    int32_t *gch = poisoned_ints(TK), *grouted = poisoned_ints(E);
    CUDA_OK(moe_cuda_router_forward(cuda_test_ctx, gs, glse, gch, gw, grouted, gps, gz, gl, T, E, k,
                                    tbs, renorm));

    /* host reference */
    double *s = malloc(TE * 8), *lse = malloc((size_t)T * 8), *w = malloc(TK * 8);
    int32_t *ch = malloc(TK * 4), *routed = calloc((size_t)E, 4);
    double *ps = calloc((size_t)E, 8), zs = 0;
    for (int t = 0; t < T; t++) {
        int c[8];
        ref_route(s + (long)t * E, lse + t, c, w + (long)t * k, l + (long)t * E, E, k, tbs, renorm);
        for (int j = 0; j < k; j++) ch[(long)t * k + j] = c[j], routed[c[j]]++;
        for (int e = 0; e < E; e++) ps[e] += s[(long)t * E + e];
        zs += lse[t] * lse[t];
    }
    char what[120];
#define WHAT(name)                                                                                 \
    (snprintf(what, sizeof what, "router %s T=%d E=%d k=%d tbs=%d rn=%d", name, T, E, k, tbs,      \
              renorm),                                                                             \
     what)
    int32_t *hch = download_ints(gch, TK), *hrouted = download_ints(grouted, E);
    assert_ints_equal(WHAT("chosen"), hch, ch, TK);
    assert_ints_equal(WHAT("routed"), hrouted, routed, E);
    float *hs = cuda_test_download(gs, TE, MOE_DT_F32), *hlse = cuda_test_download(glse, T, 0);
    float *hw = cuda_test_download(gw, TK, 0), *hps = cuda_test_download(gps, E, 0);
    float *hz = cuda_test_download(gz, 1, 0);
    float *f = malloc((TE > TK ? TE : TK) * 4 + 4);
    for (long i = 0; i < TE; i++) f[i] = (float)s[i];
    cuda_assert_close(WHAT("scores"), hs, f, TE, 1e-5);
    for (int t = 0; t < T; t++) f[t] = (float)lse[t];
    cuda_assert_close(WHAT("lse"), hlse, f, T, 1e-5);
    for (long i = 0; i < TK; i++) f[i] = (float)w[i];
    cuda_assert_close(WHAT("weights"), hw, f, TK, 1e-5);
    for (int e = 0; e < E; e++) f[e] = (float)ps[e];
    cuda_assert_close(WHAT("prob_sum"), hps, f, E, 1e-5);
    f[0] = (float)zs;
    cuda_assert_close(WHAT("z_sum"), hz, f, 1, 1e-5);

    /* backward vs central differences of token_loss, choice held fixed */
    float *gdw = cuda_test_upload(dw, TK, MOE_DT_F32), *gdP = cuda_test_upload(dP, E, 0);
    float *gdz = cuda_test_upload(&dz, 1, 0), *gdl = cuda_test_poisoned(TE, MOE_DT_F32);
    CUDA_OK(moe_cuda_router_backward(cuda_test_ctx, gdl, gdw, with_dp_dz ? gdP : NULL,
                                     with_dp_dz ? gdz : NULL, gs, glse, gch, gw, T, E, k, tbs,
                                     renorm));
    float *hdl = cuda_test_download(gdl, TE, MOE_DT_F32);
    double *lt = malloc((size_t)E * 8);
    const double h = 1e-4;
    for (int t = 0; t < T; t++) {
        int c[8];
        for (int j = 0; j < k; j++) c[j] = ch[(long)t * k + j];
        for (int e = 0; e < E; e++) lt[e] = l[(long)t * E + e];
        for (int e = 0; e < E; e++) {
            double keep = lt[e];
            lt[e] = keep + h;
            double up = token_loss(lt, c, dw + (long)t * k, with_dp_dz ? dP : NULL,
                                   with_dp_dz ? dz : 0, E, k, tbs, renorm);
            lt[e] = keep - h;
            double dn = token_loss(lt, c, dw + (long)t * k, with_dp_dz ? dP : NULL,
                                   with_dp_dz ? dz : 0, E, k, tbs, renorm);
            lt[e] = keep;
            f[(long)t * E + e] = (float)((up - dn) / (2 * h));
        }
    }
    cuda_assert_close(WHAT(with_dp_dz ? "dlogits (dw, dP, dz)" : "dlogits (dw only)"), hdl, f, TE,
                      1e-4);
#undef WHAT
    void *dev[] = {gl, gs, glse, gw, gps, gz, gch, grouted, gdw, gdP, gdz, gdl};
    for (int i = 0; i < 12; i++) dfree(dev[i]);
    void *host[] = {l,       dw, dP,   s,  lse, w,  ch, routed, ps, hch,
                    hrouted, hs, hlse, hw, hps, hz, f,  hdl,    lt};
    for (int i = 0; i < 19; i++) free(host[i]);
}

static void test_router(void **state) {
    (void)state;
    static const int shapes[][3] = {{1000, 8, 2},  {37, 64, 8}, {1, 5, 1},
                                    {300, 256, 8}, {53, 5, 5},  {129, 33, 1}};
    for (int i = 0; i < 6; i++)
        for (int mode = 0; mode < 3; mode++) { /* softmax, renormalized, top-k first */
            int tbs = mode == 2, rn = mode == 1;
            check_router(shapes[i][0], shapes[i][1], shapes[i][2], tbs, rn, 1);
            if (i < 2) check_router(shapes[i][0], shapes[i][1], shapes[i][2], tbs, rn, 0);
        }
}

/* ---- aux loss ------------------------------------------------------------- */

static void check_aux(int T, int E, int k, int by_k) {
    int32_t *routed = malloc((size_t)E * 4);
    float *ps = malloc((size_t)E * 4), zs = (float)T * 1.7f;
    for (int e = 0; e < E; e++) {
        routed[e] = (int32_t)moe_rng_below(&rng, (uint32_t)(2 * T * k / E + 1));
        ps[e] = moe_rng_uniform(&rng) * (float)T / (float)E;
    }
    const float sc = 0.01f, zc = 0.001f, daux = 1.5f;
    int32_t *grouted = upload_ints(routed, E);
    float *gps = cuda_test_upload(ps, E, MOE_DT_F32), *gzs = cuda_test_upload(&zs, 1, 0);
    float *gaux = cuda_test_poisoned(3, MOE_DT_F32), *gdP = cuda_test_poisoned(E, MOE_DT_F32);
    float *gdz = cuda_test_poisoned(1, MOE_DT_F32);
    CUDA_OK(moe_cuda_aux_loss(cuda_test_ctx, gaux, gdP, gdz, grouted, gps, gzs, T, E, k, by_k, sc,
                              zc, daux));
    double fden = by_k ? (double)T * k : T, sw = 0;
    float want[3], *wdP = malloc((size_t)E * 4), wdz;
    for (int e = 0; e < E; e++) {
        double fe = routed[e] / fden;
        sw += fe * ps[e] / T;
        wdP[e] = (float)(daux * sc * E * fe / T);
    }
    want[0] = (float)(E * sw);
    want[1] = (float)((double)zs / T);
    want[2] = (float)(sc * (E * sw) + zc * ((double)zs / T));
    wdz = (float)((double)daux * zc / T);
    float *haux = cuda_test_download(gaux, 3, 0), *hdP = cuda_test_download(gdP, E, 0);
    float *hdz = cuda_test_download(gdz, 1, 0);
    char what[80];
    snprintf(what, sizeof what, "aux T=%d E=%d k=%d by_k=%d", T, E, k, by_k);
    for (int i = 0; i < 3; i++) cuda_assert_close(what, haux + i, want + i, 1, 1e-5);
    cuda_assert_close("aux dP", hdP, wdP, E, 1e-5);
    cuda_assert_close("aux dz", hdz, &wdz, 1, 1e-5);
    void *dev[] = {grouted, gps, gzs, gaux, gdP, gdz};
    for (int i = 0; i < 6; i++) dfree(dev[i]);
    free(routed), free(ps), free(wdP), free(haux), free(hdP), free(hdz);
}

static void test_aux(void **state) {
    (void)state;
    check_aux(1000, 8, 2, 1);
    check_aux(1000, 8, 2, 0);
    check_aux(37, 256, 8, 1);
    check_aux(1, 5, 1, 0);
}

/* ---- dispatch and combine ------------------------------------------------- */

/* k distinct experts per token, skewed towards low indices (so a finite
 * capacity drops pairs). */
static void random_choice(int32_t *ch, int T, int E, int k) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < k; j++) {
            int e, dup;
            do {
                float u = moe_rng_uniform(&rng);
                e = (int)(u * u * E);
                if (e >= E) e = E - 1;
                dup = 0;
                for (int q = 0; q < j; q++) dup |= ch[(long)t * k + q] == e;
                if (dup) e = (int)moe_rng_below(&rng, (uint32_t)E);
                dup = 0;
                for (int q = 0; q < j; q++) dup |= ch[(long)t * k + q] == e;
            } while (dup);
            ch[(long)t * k + j] = e;
        }
}

static void check_dispatch(moe_dtype dt, int T, int D, int E, int k, int capacity) {
    const long P = (long)T * k;
    const long R_max = P < (long)E * capacity ? P : (long)E * capacity;
    int32_t *ch = malloc((size_t)P * 4);
    random_choice(ch, T, E, k);
    /* host: capacity.c then dispatch.c */
    int32_t *kept = calloc((size_t)E, 4), *off = malloc((size_t)(E + 1) * 4);
    int32_t *row_of = malloc((size_t)P * 4), *token_of = malloc((size_t)(R_max ? R_max : 1) * 4);
    for (long p = 0; p < P; p++) {
        int e = ch[p];
        row_of[p] = kept[e] < capacity ? kept[e]++ : -1;
    }
    off[0] = 0;
    for (int e = 0; e < E; e++) off[e + 1] = off[e] + kept[e];
    const int R = off[E];
    for (long p = 0; p < P; p++)
        if (row_of[p] >= 0) {
            row_of[p] += off[ch[p]];
            token_of[row_of[p]] = (int32_t)(p / k);
        }
    float *x = malloc((size_t)T * D * 4);
    cuda_test_randn(x, (long)T * D, 1, &rng);
    cuda_test_round(x, (long)T * D, dt);

    void *gx = cuda_test_upload(x, (long)T * D, dt), *gxp = cuda_test_poisoned(R_max * D, dt);
    int32_t *gch = upload_ints(ch, P), *gkept = poisoned_ints(E), *goff = poisoned_ints(E + 1);
    int32_t *grow = poisoned_ints(P), *gtok = poisoned_ints(R_max);
    void *scratch;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &scratch, moe_cuda_dispatch_scratch(T, k, E)));
    CUDA_OK(moe_cuda_dispatch_forward(cuda_test_ctx, dt, gxp, gkept, goff, grow, gtok, gx, gch, T,
                                      D, E, k, capacity, scratch));
    char what[160];
#define WHAT(name)                                                                                 \
    (snprintf(what, sizeof what, "%s %s T=%d D=%d E=%d k=%d cap=%d", name, moe_dtype_name(dt), T,  \
              D, E, k, capacity == INT_MAX ? -1 : capacity),                                       \
     what)
    int32_t *hkept = download_ints(gkept, E), *hoff = download_ints(goff, E + 1);
    int32_t *hrow = download_ints(grow, P), *htok = download_ints(gtok, R_max);
    assert_ints_equal(WHAT("dispatch kept"), hkept, kept, E);
    assert_ints_equal(WHAT("dispatch offsets"), hoff, off, E + 1);
    assert_ints_equal(WHAT("dispatch row_of"), hrow, row_of, P);
    assert_ints_equal(WHAT("dispatch token_of"), htok, token_of, R);
    printf("    (R=%d of R_max=%ld, %ld dropped)\n", R, R_max, P - R);
    /* xp: a copy, so exact */
    float *hxp = cuda_test_download(gxp, R_max * D, dt), *wxp = malloc((size_t)R * D * 4 + 4);
    for (int r = 0; r < R; r++) memcpy(wxp + (long)r * D, x + (long)token_of[r] * D, (size_t)D * 4);
    for (long i = 0; i < (long)R * D; i++)
        if (memcmp(&hxp[i], &wxp[i], 4)) {
            print_error("xp element %ld is %g, expected %g\n", i, hxp[i], wxp[i]);
            fail();
        }

    /* dispatch backward: dx += kept rows of dxp */
    const double bound = cuda_test_bound(dt, 1e-6, 1e-2);
    float *dxp = malloc((size_t)R * D * 4 + 4), *dx = malloc((size_t)T * D * 4);
    cuda_test_randn(dxp, (long)R * D, 1, &rng);
    cuda_test_randn(dx, (long)T * D, 1, &rng);
    cuda_test_round(dxp, (long)R * D, dt), cuda_test_round(dx, (long)T * D, dt);
    void *gdxp = cuda_test_upload(dxp, (long)R * D, dt),
         *gdx = cuda_test_upload(dx, (long)T * D, dt);
    CUDA_OK(moe_cuda_dispatch_backward(cuda_test_ctx, dt, gdx, gdxp, grow, T, D, k));
    for (long p = 0; p < P; p++)
        if (row_of[p] >= 0)
            for (int i = 0; i < D; i++) dx[(p / k) * D + i] += dxp[(long)row_of[p] * D + i];
    float *hdx = cuda_test_download(gdx, (long)T * D, dt);
    cuda_assert_close(WHAT("dispatch backward dx (+=)"), hdx, dx, (long)T * D, bound);

    /* combine forward: y [R,D] rows, weights [T,k]; written, then accumulated */
    float *y = malloc((size_t)R * D * 4 + 4), *w = malloc((size_t)P * 4);
    float *out = malloc((size_t)T * D * 4), *out0 = malloc((size_t)T * D * 4);
    cuda_test_randn(y, (long)R * D, 1, &rng);
    cuda_test_round(y, (long)R * D, dt);
    for (long p = 0; p < P; p++) w[p] = moe_rng_uniform(&rng);
    cuda_test_randn(out0, (long)T * D, 1, &rng);
    cuda_test_round(out0, (long)T * D, dt);
    void *gy = cuda_test_upload(y, (long)R * D, dt);
    float *gw = cuda_test_upload(w, P, MOE_DT_F32);
    for (int acc = 0; acc < 2; acc++) {
        void *gout =
            acc ? cuda_test_upload(out0, (long)T * D, dt) : cuda_test_poisoned((long)T * D, dt);
        CUDA_OK(moe_cuda_combine_forward(cuda_test_ctx, dt, gout, gy, gw, grow, T, D, k, acc));
        for (int t = 0; t < T; t++)
            for (int i = 0; i < D; i++) {
                double a = acc ? out0[(long)t * D + i] : 0;
                for (int j = 0; j < k; j++) {
                    int r = row_of[(long)t * k + j];
                    if (r >= 0) a += (double)w[(long)t * k + j] * y[(long)r * D + i];
                }
                out[(long)t * D + i] = (float)a;
            }
        float *hout = cuda_test_download(gout, (long)T * D, dt);
        cuda_assert_close(WHAT(acc ? "combine forward (accumulate)" : "combine forward"), hout, out,
                          (long)T * D, bound);
        free(hout);
        dfree(gout);
    }

    /* combine backward: dy rows of kept pairs, dw dot products */
    float *dout = malloc((size_t)T * D * 4), *dy = malloc((size_t)R * D * 4 + 4);
    float *dw = malloc((size_t)P * 4);
    cuda_test_randn(dout, (long)T * D, 1, &rng);
    cuda_test_round(dout, (long)T * D, dt);
    void *gdout = cuda_test_upload(dout, (long)T * D, dt), *gdy = cuda_test_poisoned(R_max * D, dt);
    float *gdw = cuda_test_poisoned(P, MOE_DT_F32);
    CUDA_OK(moe_cuda_combine_backward(cuda_test_ctx, dt, gdy, gdw, gdout, gy, gw, grow, T, D, k));
    for (long p = 0; p < P; p++) {
        int r = row_of[p];
        double sdot = 0;
        for (int i = 0; i < D; i++) {
            if (r >= 0) {
                dy[(long)r * D + i] = w[p] * dout[(p / k) * D + i];
                sdot += (double)dout[(p / k) * D + i] * y[(long)r * D + i];
            }
        }
        dw[p] = (float)sdot;
    }
    float *hdy = cuda_test_download(gdy, (long)R * D, dt), *hdw = cuda_test_download(gdw, P, 0);
    cuda_assert_close(WHAT("combine backward dy"), hdy, dy, (long)R * D, bound);
    cuda_assert_close(WHAT("combine backward dw"), hdw, dw, P, 1e-5);
#undef WHAT
    void *dev[] = {gx,   gxp, gch, gkept, goff,  grow, gtok, scratch,
                   gdxp, gdx, gy,  gw,    gdout, gdy,  gdw};
    for (int i = 0; i < 15; i++) dfree(dev[i]);
    void *host[] = {ch,  kept, off, row_of, token_of, x,   hkept, hoff, hrow, htok, hxp, wxp,
                    dxp, dx,   hdx, y,      w,        out, out0,  dout, dy,   dw,   hdy, hdw};
    for (int i = 0; i < 24; i++) free(host[i]);
}

static void test_dispatch_combine(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        /* capacity factor 1: the skewed choice drops pairs */
        check_dispatch((moe_dtype)dt, 1000, 64, 8, 2, 250);
        check_dispatch((moe_dtype)dt, 1000, 33, 8, 2, INT_MAX);
        check_dispatch((moe_dtype)dt, 37, 48, 64, 8, 3);
        check_dispatch((moe_dtype)dt, 37, 1, 64, 8, INT_MAX);
        check_dispatch((moe_dtype)dt, 1, 17, 5, 1, INT_MAX);
        check_dispatch((moe_dtype)dt, 1, 8, 5, 1, 1);
        check_dispatch((moe_dtype)dt, 5003, 40, 5, 2, 1000);
        check_dispatch((moe_dtype)dt, 2000, 24, 256, 8, 40);
    }
}

/* ---- grouped GEMMs -------------------------------------------------------- */

/* counts [E] summing to R: empty experts, a 1-row expert, one large. */
static void random_counts(int32_t *cnt, int E, int R) {
    for (int e = 0; e < E; e++) cnt[e] = 0;
    int left = R;
    if (E > 2 && left > 0) cnt[1] = 1, left--; /* one row */
    if (E > 3 && left > 200) cnt[E - 1] = 300 < left ? 300 : left, left -= cnt[E - 1];
    while (left > 0) {
        int e = (int)moe_rng_below(&rng, (uint32_t)E);
        if (e == 0 || e == 1) continue; /* expert 0 stays empty */
        int n = 1 + (int)moe_rng_below(&rng, 40);
        n = n < left ? n : left;
        cnt[e] += n;
        left -= n;
    }
}

static void check_grouped(moe_dtype dt, int E, int R, int R_max, int K, int N) {
    int32_t *cnt = malloc((size_t)E * 4), *off = malloc((size_t)(E + 1) * 4);
    random_counts(cnt, E, R);
    off[0] = 0;
    for (int e = 0; e < E; e++) off[e + 1] = off[e] + cnt[e];
    const long nin = (long)R_max * K, nout = (long)R_max * N, nw = (long)E * N * K;
    float *inp = malloc(nin * 4), *w = malloc(nw * 4), *dout = malloc(nout * 4);
    float *dwt = malloc(nw * 4);
    cuda_test_randn(inp, nin, 1, &rng);
    cuda_test_randn(w, nw, 0.1f, &rng);
    cuda_test_randn(dout, nout, 1, &rng);
    cuda_test_randn(dwt, nw, 1, &rng); /* added to: start non-zero */
    cuda_test_round(inp, nin, dt), cuda_test_round(w, nw, dt), cuda_test_round(dout, nout, dt);
    /* rows >= R must not be read: NaN there would spread */
    for (long i = (long)R * K; i < nin; i++) inp[i] = NAN;
    for (long i = (long)R * N; i < nout; i++) dout[i] = NAN;
    void *ginp = cuda_test_upload(inp, nin, dt), *gw = cuda_test_upload(w, nw, dt);
    void *gdout = cuda_test_upload(dout, nout, dt);
    float *gdw = cuda_test_upload(dwt, nw, MOE_DT_F32);
    int32_t *goff = upload_ints(off, E + 1);
    void *gout = cuda_test_poisoned(nout, dt), *gdinp = cuda_test_poisoned(nin, dt);
    CUDA_OK(moe_cuda_grouped_forward(cuda_test_ctx, dt, gout, ginp, gw, goff, E, R_max, K, N));
    CUDA_OK(
        moe_cuda_grouped_backward_input(cuda_test_ctx, dt, gdinp, gdout, gw, goff, E, R_max, K, N));
    CUDA_OK(moe_cuda_grouped_backward_weight(cuda_test_ctx, dt, gdw, gdout, ginp, goff, E, R_max, K,
                                             N));
    float *out = malloc(nout * 4 + 4), *dinp = malloc(nin * 4 + 4);
    for (int e = 0; e < E; e++) {
        const float *We = w + (long)e * N * K;
        for (int r = off[e]; r < off[e + 1]; r++) {
            for (int n = 0; n < N; n++) {
                double a = 0;
                for (int q = 0; q < K; q++) a += (double)inp[(long)r * K + q] * We[(long)n * K + q];
                out[(long)r * N + n] = (float)a;
            }
            for (int q = 0; q < K; q++) {
                double a = 0;
                for (int n = 0; n < N; n++)
                    a += (double)dout[(long)r * N + n] * We[(long)n * K + q];
                dinp[(long)r * K + q] = (float)a;
            }
        }
        for (int n = 0; n < N; n++)
            for (int q = 0; q < K; q++) {
                double a = dwt[((long)e * N + n) * K + q];
                for (int r = off[e]; r < off[e + 1]; r++)
                    a += (double)dout[(long)r * N + n] * inp[(long)r * K + q];
                dwt[((long)e * N + n) * K + q] = (float)a;
            }
    }
    float *hout = cuda_test_download(gout, nout, dt), *hdinp = cuda_test_download(gdinp, nin, dt);
    float *hdw = cuda_test_download(gdw, nw, MOE_DT_F32);
    char what[160];
#define WHAT(name)                                                                                 \
    (snprintf(what, sizeof what, "%s %s E=%d R=%d/%d K=%d N=%d", name, moe_dtype_name(dt), E, R,   \
              R_max, K, N),                                                                        \
     what)
    const double bound = cuda_test_bound(dt, 1e-5, 1e-2);
    cuda_assert_close(WHAT("grouped forward"), hout, out, (long)R * N, bound);
    cuda_assert_close(WHAT("grouped backward_input"), hdinp, dinp, (long)R * K, bound);
    cuda_assert_close(WHAT("grouped backward_weight (+=)"), hdw, dwt, nw,
                      cuda_test_bound(dt, 1e-5, 5e-5));
    /* rows >= R were not written: the poison (NaN) is still there */
    for (long i = (long)R * N; i < nout; i++)
        if (!isnan(hout[i])) {
            print_error("%s: out element %ld (row >= R) was written\n", what, i);
            fail();
        }
    for (long i = (long)R * K; i < nin; i++)
        if (!isnan(hdinp[i])) {
            print_error("%s: dinp element %ld (row >= R) was written\n", what, i);
            fail();
        }
#undef WHAT
    void *dev[] = {ginp, gw, gdout, gdw, goff, gout, gdinp};
    for (int i = 0; i < 7; i++) dfree(dev[i]);
    void *host[] = {cnt, off, inp, w, dout, dwt, out, dinp, hout, hdinp, hdw};
    for (int i = 0; i < 11; i++) free(host[i]);
}

static void test_grouped(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        check_grouped((moe_dtype)dt, 8, 700, 760, 72, 136);
        check_grouped((moe_dtype)dt, 5, 301, 301, 33, 17);
        check_grouped((moe_dtype)dt, 64, 1000, 1200, 64, 128);
        check_grouped((moe_dtype)dt, 3, 450, 500, 200, 300);
        check_grouped((moe_dtype)dt, 4, 1, 8, 40, 24);
        check_grouped((moe_dtype)dt, 7, 0, 16, 16, 16); /* every expert empty */
        check_grouped((moe_dtype)dt, 6, 260, 290, 1, 5);
    }
}

/* ---- bad arguments -------------------------------------------------------- */

static void test_bad_args(void **state) {
    (void)state;
    moe_cuda *c = cuda_test_ctx;
    /* k > 8, E > 256, k > E, k < 1 */
    assert_int_equal(
        moe_cuda_router_forward(c, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4, 16, 9, 0, 0),
        MOE_ERR_INVALID);
    assert_int_equal(
        moe_cuda_router_forward(c, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4, 257, 2, 0, 0),
        MOE_ERR_INVALID);
    assert_int_equal(
        moe_cuda_router_forward(c, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4, 4, 5, 0, 0),
        MOE_ERR_INVALID);
    assert_int_equal(
        moe_cuda_router_backward(c, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4, 4, 0, 0, 0),
        MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_router_backward(c, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4,
                                              300, 2, 0, 0),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_aux_loss(c, NULL, NULL, NULL, NULL, NULL, NULL, 4, 8, 9, 1, 1, 1, 1),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_aux_loss(c, NULL, NULL, NULL, NULL, NULL, NULL, 0, 8, 2, 1, 1, 1, 1),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_dispatch_forward(c, MOE_DT_F32, NULL, NULL, NULL, NULL, NULL, NULL,
                                               NULL, 4, 8, 4, 5, INT_MAX, NULL),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_dispatch_forward(c, MOE_DT_F32, NULL, NULL, NULL, NULL, NULL, NULL,
                                               NULL, 4, 8, 512, 2, INT_MAX, NULL),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_dispatch_forward(c, MOE_DT_F32, NULL, NULL, NULL, NULL, NULL, NULL,
                                               NULL, 4, 8, 16, 9, INT_MAX, NULL),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_dispatch_backward(c, MOE_DT_F32, NULL, NULL, NULL, 4, 8, 9),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_combine_forward(c, MOE_DT_F32, NULL, NULL, NULL, NULL, 4, 8, 0, 0),
                     MOE_ERR_INVALID);
    assert_int_equal(moe_cuda_grouped_forward(c, MOE_DT_F32, NULL, NULL, NULL, NULL, 0, 8, 8, 8),
                     MOE_ERR_INVALID);
    assert_int_equal(
        moe_cuda_grouped_backward_weight(c, MOE_DT_BF16, NULL, NULL, NULL, NULL, 257, 8, 8, 8),
        MOE_ERR_INVALID);
    assert_int_equal(
        moe_cuda_grouped_backward_input(c, MOE_DT_BF16, NULL, NULL, NULL, NULL, 4, -1, 8, 8),
        MOE_ERR_INVALID);
    CUDA_OK(moe_cuda_sync(c)); /* nothing was launched, nothing failed */
}

int main(void) {
    cuda_test_init_or_skip();
    cuda_test_seed(&rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router),           cmocka_unit_test(test_aux),
        cmocka_unit_test(test_dispatch_combine), cmocka_unit_test(test_grouped),
        cmocka_unit_test(test_bad_args),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    moe_cuda_destroy(cuda_test_ctx);
    return rc;
}
