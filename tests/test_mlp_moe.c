/* Behaviour of the family mlp_moe (seed 002): the parameter table and its
 * initialisation, the zero gate's uniform start, the exactly-zero router
 * gradient of top-1 with renormalisation, the FLOP and parameter counts,
 * the loss formulas against hand computations from the outputs, the
 * accessors, errors, and a small soft-label problem that Adam learns. */
#include "test_util.h"

#include "models/family.h"
#include "moe/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F = 6, H = 8, C = 5 };

static moe_model_config config(int E, int k) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_MLP_MOE;
    c.input.features = F;
    c.n_classes = C;
    c.mlp.hidden = H;
    c.moe.n_experts = E;
    c.moe.top_k = k;
    c.moe.noisy = 1;
    c.moe.renormalize = 1;
    c.moe.temperature = 1.0f;
    c.moe.cv_coef = 0.01f;
    c.mlp.param_div_weight = 0.05f;
    c.mlp.output_div_weight = 0.05f;
    c.mlp.js_weight = 0.05f;
    return c;
}

static void *create(const moe_model_config *c, uint64_t seed) {
    void *m = NULL;
    assert_int_equal(family_mlp_moe.create(&m, c, seed), MOE_OK);
    return m;
}

static const moe_real *tensor(void *m, const char *name, const moe_tensor_info **info) {
    const moe_param_table *t = family_mlp_moe.table(m);
    int i = moe_params_find(t, name);
    assert_true(i >= 0);
    if (info) *info = &t->tensors[i];
    return family_mlp_moe.params(m) + t->tensors[i].offset;
}

/* Rows of x uniform in [-1, 1) and soft targets from a fixed seed. */
static void make_batch(moe_real *x, moe_real *soft, int B, unsigned long long seed) {
    fill_uniform(x, (long)B * F, -1, 1, seed);
    fill_uniform(soft, (long)B * C, 0.05, 1, seed + 1);
    for (int r = 0; r < B; r++) {
        double s = 0;
        for (int j = 0; j < C; j++) s += soft[r * C + j];
        for (int j = 0; j < C; j++) soft[r * C + j] = (moe_real)(soft[r * C + j] / s);
    }
}

static void test_table_and_init(void **state) {
    (void)state;
    const int E = 3;
    moe_model_config c = config(E, 2);
    void *m = create(&c, 9);
    const moe_param_table *t = family_mlp_moe.table(m);
    assert_int_equal(t->count, 2 + 4 * E);
    size_t numel = 0; /* total also counts the 64-byte alignment gaps */
    for (int i = 0; i < t->count; i++) numel += t->tensors[i].numel;
    assert_int_equal(numel, (size_t)2 * E * F + (size_t)E * (H * F + H + C * H + C));
    const moe_tensor_info *ti;
    const moe_real *gate = tensor(m, "gate.weight", &ti);
    assert_int_equal(ti->shape[0], E);
    assert_int_equal(ti->shape[1], F);
    const moe_real *noise = tensor(m, "gate.noise", NULL);
    for (int i = 0; i < E * F; i++) {
        assert_true(gate[i] == 0);
        assert_true(noise[i] == 0);
    }
    /* nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not constant */
    const char *names[] = {"experts.2.fc1.weight", "experts.2.fc1.bias", "experts.0.fc2.weight",
                           "experts.1.fc2.bias"};
    const int fan_in[] = {F, F, H, H};
    for (int n = 0; n < 4; n++) {
        const moe_real *p = tensor(m, names[n], &ti);
        double bound = 1 / sqrt((double)fan_in[n]), lo = 1, hi = -1;
        for (size_t i = 0; i < ti->numel; i++) {
            lo = fmin(lo, p[i]);
            hi = fmax(hi, p[i]);
        }
        assert_true(lo >= -bound && hi <= bound);
        assert_true(hi - lo > 0.5 * bound); /* spread over the interval */
    }
    tensor(m, "experts.1.fc1.weight", &ti);
    assert_int_equal(ti->shape[0], H);
    assert_int_equal(ti->shape[1], F);
    /* the same seed gives the same parameters, another seed others */
    void *m2 = create(&c, 9), *m3 = create(&c, 10);
    assert_memory_equal(family_mlp_moe.params(m), family_mlp_moe.params(m2),
                        t->total * sizeof(moe_real));
    assert_true(memcmp(family_mlp_moe.params(m), family_mlp_moe.params(m3),
                       t->total * sizeof(moe_real)) != 0);
    family_mlp_moe.destroy(m);
    family_mlp_moe.destroy(m2);
    family_mlp_moe.destroy(m3);
    /* without noise there is no noise tensor */
    c.moe.noisy = 0;
    m = create(&c, 9);
    assert_int_equal(moe_params_find(family_mlp_moe.table(m), "gate.noise"), -1);
    family_mlp_moe.destroy(m);
}

/* The zero gate's softmax is uniform over the experts at the start. */
static void test_zero_gate_uniform_start(void **state) {
    (void)state;
    const int E = 4, B = 16;
    moe_model_config c = config(E, 2);
    void *m = create(&c, 3);
    moe_real x[B * F], soft[B * C];
    make_batch(x, soft, B, 4);
    moe_batch b = {0};
    b.B = B;
    b.T = 1;
    b.x = x;
    b.soft = soft;
    moe_arena arena;
    moe_arena_init(&arena);
    double task, aux;
    assert_int_equal(family_mlp_moe.forward(m, &b, 0, NULL, &arena, &task, &aux), MOE_OK);
    assert_int_equal(family_mlp_moe.n_moe_layers(m), 1);
    const moe_layer_stats *st = family_mlp_moe.layer_stats(m, 0);
    assert_non_null(st);
    assert_int_equal(st->n_tokens, B);
    assert_int_equal(st->n_pairs, B * 2);
    assert_int_equal(st->top_k, 2);
    for (int e = 0; e < E; e++) assert_close(st->mean_prob[e], 1.0 / E, 1e-7);
    assert_close(st->router_entropy, log((double)E), 1e-6);
    /* renormalised: the two chosen experts weigh 1/2 each */
    for (int i = 0; i < B * 2; i++) assert_close(st->gate[i], 0.5, 1e-7);
    int pairs = 0;
    for (int e = 0; e < E; e++) pairs += st->expert_tokens[e];
    assert_int_equal(pairs, B * 2);
    family_mlp_moe.destroy(m);
    moe_arena_free(&arena);
}

static double router_grad_sq(void *m) {
    const moe_param_table *t = family_mlp_moe.table(m);
    const moe_real *g = family_mlp_moe.grads(m);
    double s = 0;
    for (int i = 0; i < t->count; i++) {
        if (strncmp(t->tensors[i].name, "gate.", 5)) continue;
        for (size_t j = 0; j < t->tensors[i].numel; j++) {
            double v = g[t->tensors[i].offset + j];
            s += v * v;
        }
    }
    return s;
}

/* One forward + backward on fresh gradients; returns the router's squared
 * gradient norm. The gate starts away from zero so routing varies. */
static double router_grad_after_step(moe_model_config *c, int training) {
    const int B = 24;
    void *m = create(c, 5);
    const moe_param_table *t = family_mlp_moe.table(m);
    moe_real *p = family_mlp_moe.params(m);
    for (int i = 0; i < t->count; i++)
        if (!strncmp(t->tensors[i].name, "gate.", 5))
            fill_uniform(p + t->tensors[i].offset, (long)t->tensors[i].numel, -1, 1, 40 + i);
    moe_real x[B * F], soft[B * C];
    make_batch(x, soft, B, 6);
    moe_batch b = {0};
    b.B = B;
    b.T = 1;
    b.x = x;
    b.soft = soft;
    moe_arena arena;
    moe_arena_init(&arena);
    moe_rng rng;
    moe_rng_seed(&rng, 8);
    double task, aux;
    assert_int_equal(family_mlp_moe.forward(m, &b, training, &rng, &arena, &task, &aux), MOE_OK);
    if (c->moe.top_k == 1 && c->moe.renormalize) {
        const moe_real *scores, *gates;
        assert_int_equal(family_mlp_moe.expert_outputs(m, &scores, &gates), c->moe.n_experts);
        for (int r = 0; r < B; r++) {
            double s = 0;
            for (int e = 0; e < c->moe.n_experts; e++) s += gates[r * c->moe.n_experts + e];
            assert_true(s == 1.0); /* s / s, exactly */
        }
    }
    memset(family_mlp_moe.grads(m), 0, t->total * sizeof(moe_real));
    assert_int_equal(family_mlp_moe.backward(m, &arena, 1.0f), MOE_OK);
    double r = router_grad_sq(m);
    moe_arena_free(&arena);
    family_mlp_moe.destroy(m);
    return r;
}

/* Top-1 with renormalisation: the gate weight is exactly 1, so the router
 * gets exactly no gradient from the task loss or the importance term; only
 * the smooth load of noisy training reaches it. */
static void test_top1_renorm_router_gradient_zero(void **state) {
    (void)state;
    moe_model_config c = config(4, 1);
    c.moe.cv_coef = 0;
    assert_true(router_grad_after_step(&c, 1) == 0.0);
    c.moe.cv_coef = 0.5f;
    assert_true(router_grad_after_step(&c, 0) == 0.0); /* no noise: importance is a count */
    assert_true(router_grad_after_step(&c, 1) > 0);    /* the smooth load */
    /* top-1 without renormalisation, or top-2, does train the router */
    c.moe.cv_coef = 0;
    c.moe.renormalize = 0;
    assert_true(router_grad_after_step(&c, 1) > 0);
    c = config(4, 2);
    c.moe.cv_coef = 0;
    assert_true(router_grad_after_step(&c, 1) > 0);
}

static void test_flops_and_active_params(void **state) {
    (void)state;
    const int E = 4, k = 1;
    moe_model_config c = config(E, k);
    c.mlp.output_div_weight = 0;
    c.mlp.js_weight = 0;
    void *m = create(&c, 1);
    const double router = 2.0 * 2 * E * F, expert = 2.0 * (F * H + H * C);
    assert_close(family_mlp_moe.train_flops(m, 1), 3 * (router + k * expert), 1e-6);
    assert_close(family_mlp_moe.all_experts_flops(m, 1), 3 * (router + E * expert), 1e-6);
    assert_true(family_mlp_moe.train_flops(m, 1) < family_mlp_moe.all_experts_flops(m, 1));
    assert_int_equal(family_mlp_moe.active_params(m), 2 * E * F + k * (H * F + H + C * H + C));
    family_mlp_moe.destroy(m);
    /* output diversity needs every expert's output on every example */
    c.mlp.output_div_weight = 0.1f;
    m = create(&c, 1);
    assert_close(family_mlp_moe.train_flops(m, 1), family_mlp_moe.all_experts_flops(m, 1), 1e-6);
    family_mlp_moe.destroy(m);
}

/* Task loss = mean_b w_b * -sum_c t log p_hat, checked from class_logits;
 * hard labels equal one-hot soft targets, ignored rows leave the mean. */
static void test_loss_formulas(void **state) {
    (void)state;
    const int E = 3, B = 10;
    moe_model_config c = config(E, 2);
    void *m = create(&c, 2);
    moe_real x[B * F], soft[B * C], w[B], onehot[B * C];
    int32_t labels[B];
    make_batch(x, soft, B, 12);
    fill_uniform(w, B, 0.1, 3, 13);
    moe_batch b = {0};
    b.B = B;
    b.T = 1;
    b.x = x;
    b.soft = soft;
    b.weights = w;
    moe_arena arena;
    moe_arena_init(&arena);
    double task, aux;
    assert_int_equal(family_mlp_moe.forward(m, &b, 0, NULL, &arena, &task, &aux), MOE_OK);
    const moe_real *lp = family_mlp_moe.class_logits(m);
    double want = 0;
    for (int r = 0; r < B; r++) {
        double l = 0, psum = 0;
        for (int j = 0; j < C; j++) {
            l -= soft[r * C + j] * lp[r * C + j];
            psum += exp(lp[r * C + j]);
        }
        assert_close(psum, 1, 1e-5); /* a distribution */
        want += w[r] * l / B;        /* the seed's (w * l).mean() */
    }
    assert_close(task, want, 1e-5);
    /* the aux total is the weighted sum of the named parts */
    const char *const *names;
    const double *v;
    assert_int_equal(family_mlp_moe.loss_parts(m, &names, &v), 4);
    assert_string_equal(names[0], "cv");
    assert_string_equal(names[3], "js");
    assert_close(aux, 0.01f * v[0] + 0.05f * (v[1] + v[2] + v[3]), 1e-6);
    assert_true(v[3] <= 0); /* minus a divergence */

    /* p_hat = sum_e gate_e * expert distribution */
    const moe_real *scores, *gates;
    assert_int_equal(family_mlp_moe.expert_outputs(m, &scores, &gates), E);
    for (int r = 0; r < B; r++)
        for (int j = 0; j < C; j++) {
            double p = 0;
            for (int e = 0; e < E; e++) p += gates[r * E + e] * exp(scores[(e * B + r) * C + j]);
            assert_close(log(p), lp[r * C + j], 1e-5);
        }

    /* hard labels: one-hot soft targets, row 4 ignored */
    for (int r = 0; r < B; r++) labels[r] = r == 4 ? -1 : (r * 2) % C;
    memset(onehot, 0, sizeof onehot);
    double hard_want = 0;
    for (int r = 0; r < B; r++)
        if (labels[r] >= 0) {
            onehot[r * C + labels[r]] = 1;
            hard_want -= lp[r * C + labels[r]] / (B - 1);
        }
    b.soft = NULL;
    b.weights = NULL;
    b.labels = labels;
    moe_arena_reset(&arena);
    assert_int_equal(family_mlp_moe.forward(m, &b, 0, NULL, &arena, &task, &aux), MOE_OK);
    assert_close(task, hard_want, 1e-5);
    /* a label outside [0, C) is an error */
    labels[0] = C;
    moe_arena_reset(&arena);
    assert_int_equal(family_mlp_moe.forward(m, &b, 0, NULL, &arena, &task, &aux), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "n_classes"));
    /* neither labels nor targets: outputs only, task loss 0 */
    b.labels = NULL;
    moe_arena_reset(&arena);
    assert_int_equal(family_mlp_moe.forward(m, &b, 0, NULL, &arena, &task, &aux), MOE_OK);
    assert_true(task == 0);
    assert_non_null(family_mlp_moe.class_logits(m));
    moe_arena_free(&arena);
    family_mlp_moe.destroy(m);
}

static void test_errors(void **state) {
    (void)state;
    void *m = NULL;
    moe_model_config c = config(4, 2);
    c.moe.topk_before_softmax = 1;
    assert_int_equal(family_mlp_moe.create(&m, &c, 1), MOE_ERR_INVALID);
    assert_null(m);
    c = config(4, 5);
    assert_int_equal(family_mlp_moe.create(&m, &c, 1), MOE_ERR_INVALID);
    c = config(4, 2);
    c.n_classes = 1;
    assert_int_equal(family_mlp_moe.create(&m, &c, 1), MOE_ERR_INVALID);
    c = config(4, 2);
    c.input.features = 0;
    assert_int_equal(family_mlp_moe.create(&m, &c, 1), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "features"));
    /* noisy training without an rng */
    c = config(4, 2);
    m = create(&c, 1);
    moe_real x[2 * F] = {0}, soft[2 * C] = {0};
    moe_batch b = {0};
    b.B = 2;
    b.x = x;
    b.soft = soft;
    moe_arena arena;
    moe_arena_init(&arena);
    double task, aux;
    assert_int_equal(family_mlp_moe.forward(m, &b, 1, NULL, &arena, &task, &aux), MOE_ERR_INVALID);
    assert_null(family_mlp_moe.class_logits(m));
    assert_int_equal(family_mlp_moe.backward(m, &arena, 1.0f), MOE_ERR_INVALID);
    moe_arena_free(&arena);
    family_mlp_moe.destroy(m);
}

/* A small soft-label problem: targets softmax(x A) for a fixed A. Full-batch
 * Adam (the seed's lr 5e-3) with noisy routing and every auxiliary term on
 * must cut the KL to the targets by more than half in 300 steps. */
static void test_learns_soft_labels(void **state) {
    (void)state;
    const int B = 128, E = 4, steps = 300;
    moe_model_config c = config(E, 2);
    void *m = create(&c, 21);
    moe_real *x = malloc(sizeof(moe_real) * B * F), *soft = malloc(sizeof(moe_real) * B * C);
    moe_real A[F * C];
    assert_non_null(x);
    assert_non_null(soft);
    fill_uniform(x, B * F, -1, 1, 31);
    fill_uniform(A, F * C, -2, 2, 32);
    double entropy = 0; /* the loss floor: mean target entropy */
    for (int r = 0; r < B; r++) {
        double z[C], mx = -1e30, s = 0;
        for (int j = 0; j < C; j++) {
            z[j] = 0;
            for (int i = 0; i < F; i++) z[j] += x[r * F + i] * A[i * C + j];
            mx = fmax(mx, z[j]);
        }
        for (int j = 0; j < C; j++) s += exp(z[j] - mx);
        for (int j = 0; j < C; j++) {
            double p = exp(z[j] - mx) / s;
            soft[r * C + j] = (moe_real)p;
            entropy -= p * log(p) / B;
        }
    }
    moe_batch b = {0};
    b.B = B;
    b.T = 1;
    b.x = x;
    b.soft = soft;
    const moe_param_table *t = family_mlp_moe.table(m);
    moe_optim_config oc = {0};
    oc.kind = MOE_OPT_ADAM;
    oc.lr = 5e-3f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    oc.eps = 1e-8f;
    moe_optim opt;
    assert_int_equal(moe_optim_init(&opt, &oc, t->total), MOE_OK);
    moe_arena arena;
    moe_arena_init(&arena);
    moe_rng rng;
    moe_rng_seed(&rng, 33);
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        double task, aux;
        moe_arena_reset(&arena);
        memset(family_mlp_moe.grads(m), 0, t->total * sizeof(moe_real));
        assert_int_equal(family_mlp_moe.forward(m, &b, 1, &rng, &arena, &task, &aux), MOE_OK);
        assert_int_equal(family_mlp_moe.backward(m, &arena, 1.0f), MOE_OK);
        moe_optim_step(&opt, family_mlp_moe.params(m), family_mlp_moe.grads(m), oc.lr);
        if (s == 0) first = task;
    }
    double task, aux;
    moe_arena_reset(&arena);
    assert_int_equal(family_mlp_moe.forward(m, &b, 0, NULL, &arena, &task, &aux), MOE_OK);
    last = task;
    printf("soft-label problem: CE %.4f -> %.4f (floor %.4f)\n", first, last, entropy);
    assert_true(last - entropy < 0.5 * (first - entropy));
    moe_optim_free(&opt);
    moe_arena_free(&arena);
    free(x);
    free(soft);
    family_mlp_moe.destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_and_init),
        cmocka_unit_test(test_zero_gate_uniform_start),
        cmocka_unit_test(test_top1_renorm_router_gradient_zero),
        cmocka_unit_test(test_flops_and_active_params),
        cmocka_unit_test(test_loss_formulas),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_learns_soft_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
