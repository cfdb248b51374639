/* Forward + backward time of one conv2d shape (libmoe), to compare with
 * bench/conv2d_torch.py on the same shape (scripts/bench_conv.sh runs
 * both). Prints one JSON line: the median and best of R runs after 3
 * warm-ups. Usage: conv2d_step [N,C,H,W,OC,K,stride,pad,groups] */
#include "ops/ops.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>

static moe_real *uniform(long n) {
    moe_real *v = malloc((size_t)n * sizeof *v);
    for (long i = 0; v && i < n; i++) v[i] = (moe_real)rand() / (moe_real)RAND_MAX - 0.5f;
    return v;
}

int main(int argc, char **argv) {
    enum { R = 30 };
    int N = 64, C = 32, H = 14, W = 14, OC = 64, K = 3, s = 1, p = 1, g = 1;
    if (argc > 1 &&
        sscanf(argv[1], "%d,%d,%d,%d,%d,%d,%d,%d,%d", &N, &C, &H, &W, &OC, &K, &s, &p, &g) != 9) {
        fprintf(stderr, "usage: conv2d_step N,C,H,W,OC,K,stride,pad,groups\n");
        return 2;
    }
    int OH = conv2d_out_size(H, K, s, p), OW = conv2d_out_size(W, K, s, p);
    long ni = (long)N * C * H * W, no = (long)N * OC * OH * OW, nw = (long)OC * (C / g) * K * K;
    moe_real *x = uniform(ni), *w = uniform(nw), *gy = uniform(no), *b = uniform(OC);
    moe_real *y = malloc((size_t)no * sizeof *y), *dx = malloc((size_t)ni * sizeof *dx);
    moe_real *dw = calloc((size_t)nw, sizeof *dw), *db = calloc((size_t)OC, sizeof *db);
    moe_real *sc = malloc((conv2d_scratch_elems(C, H, W, OC, K, K, s, p, g) + 1) * sizeof *sc);
    if (!x || !w || !gy || !b || !y || !dx || !dw || !db || !sc) return 1;
    double tf[R], tb[R], tt[R];
    for (int r = -3; r < R; r++) {
        double t0 = bench_now();
        conv2d_forward(y, sc, x, w, b, N, C, H, W, OC, K, K, s, p, g);
        double t1 = bench_now();
        conv2d_backward(dx, dw, db, sc, gy, x, w, N, C, H, W, OC, K, K, s, p, g);
        double t2 = bench_now();
        if (r >= 0) {
            tf[r] = t1 - t0;
            tb[r] = t2 - t1;
            tt[r] = t2 - t0;
        }
    }
    bench_sort(tf, R);
    bench_sort(tb, R);
    bench_sort(tt, R);
    printf("{\"impl\": \"libmoe\", \"shape\": \"%d,%d,%d,%d,%d,%d,%d,%d,%d\", \"fwd_ms\": %.3f, "
           "\"bwd_ms\": %.3f, \"step_ms\": %.3f, \"best_ms\": %.3f}\n",
           N, C, H, W, OC, K, s, p, g, tf[R / 2] * 1e3, tb[R / 2] * 1e3, tt[R / 2] * 1e3,
           tt[0] * 1e3);
    free(x), free(w), free(gy), free(b), free(y), free(dx), free(dw), free(db), free(sc);
    return 0;
}
