/* A checkpoint's quality on its run's data and its inference speed, for
 * `moe eval`: the same task code as training evaluates the validation (and
 * for classifiers the test) split; speed is timed on validation rows at
 * batch 1 (per-sequence latency, reported per token: p50/p90/p99) and at a
 * large batch (throughput). */
#include "moe/metrics.h"
#include "train/evaluate_cuda.h"
#include "train/task.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

/* B validation rows (row i0.. of the split, wrapping) into the task's
 * buffers as an inference batch (no targets, no labels). */
static moe_batch val_rows(train_task *t, size_t i0, int B) {
    if (t->dense) return dense_val_rows(t, (int)(i0 % (size_t)t->ds.val.n), B);
    if (t->kind == MOE_TASK_LM) {
        moe_corpus_val_batch(&t->corpus, B, t->T, (int)(i0 % 64), 64, t->x, t->y);
        return (moe_batch){t->x, NULL, NULL, NULL, B, t->T, NULL, NULL, NULL};
    }
    const moe_text_set *s = &t->text.split[MOE_TEXT_VAL];
    for (int b = 0; b < B; b++)
        moe_text_row(&t->text, &s->ex[(i0 + (size_t)b) % s->n], t->T, t->x + (size_t)b * t->T,
                     t->pad + (size_t)b * t->T);
    return (moe_batch){t->x, NULL, NULL, t->pad, B, t->T, NULL, NULL, NULL};
}

static long real_tokens(const moe_batch *b) {
    long n = 0;
    for (long i = 0; i < (long)b->B * b->T; i++) n += !b->pad_mask || b->pad_mask[i];
    return n;
}

/* Latency per token at batch 1 over n_seq sequences, and throughput at
 * batch B_big (the task's buffers hold train.batch_size rows, so the large
 * batch is timed as repeated forwards of that size). Dense tasks (images,
 * table rows) count examples instead of tokens. */
static moe_status time_inference(train_task *t, moe_model *m, moe_arena *arena, int n_seq,
                                 cJSON *o) {
    moe_latency lat;
    moe_latency_init(&lat);
    moe_status st = MOE_OK;
    long tokens1 = 0;
    double time1 = 0;
    for (int i = -1; i < n_seq && st == MOE_OK; i++) { /* i = -1 warms up */
        moe_batch b = val_rows(t, (size_t)(i < 0 ? 0 : i), 1);
        moe_arena_reset(arena);
        double t0 = now_s();
        st = moe_model_forward_batch(m, &b, 0, NULL, arena, NULL, NULL);
        double dt = now_s() - t0;
        if (i < 0) continue;
        long n = real_tokens(&b);
        tokens1 += n;
        time1 += dt;
        if (st == MOE_OK) st = moe_latency_add(&lat, dt / (double)n);
    }
    moe_latency_summary sum;
    if (st == MOE_OK) st = moe_latency_summarize(&lat, &sum);
    moe_latency_free(&lat);
    if (st != MOE_OK) return st;
    const char *unit = t->dense ? "example" : "token";
    char key[64];
    const double pct[3] = {sum.p50, sum.p90, sum.p99};
    const char *pname[3] = {"p50", "p90", "p99"};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "latency_ms_per_%s_%s", unit, pname[i]);
        add_num(o, key, pct[i] * 1e3);
    }
    snprintf(key, sizeof key, "%ss_per_s_batch1", unit);
    add_num(o, key, tokens1 / time1);
    long tokensB = 0;
    double timeB = 0;
    for (int i = 0; i < 4 && st == MOE_OK; i++) {
        moe_batch b = val_rows(t, (size_t)i * (size_t)t->B, t->dense ? t->dense_B : t->B);
        moe_arena_reset(arena);
        double t0 = now_s();
        st = moe_model_forward_batch(m, &b, 0, NULL, arena, NULL, NULL);
        if (i == 0) continue; /* warm-up */
        timeB += now_s() - t0;
        tokensB += real_tokens(&b);
    }
    cJSON_AddNumberToObject(o, "large_batch", t->B);
    snprintf(key, sizeof key, "%ss_per_s_large_batch", unit);
    add_num(o, key, tokensB / timeB);
    return st;
}

/* Language models: greedy decoding with the KV cache, 64 new tokens after a
 * 64-token validation prompt, per new token. */
static moe_status decode_latency(train_task *t, moe_model *m, cJSON *o) {
    enum { PROMPT = 64, NEW = 64 };
    int32_t ids[PROMPT + NEW];
    for (int i = 0; i < PROMPT; i++) ids[i] = t->corpus.bytes[t->corpus.n_train + (size_t)i];
    moe_sampling greedy = {0, 0, 1};
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    double t0 = now_s();
    moe_status st = moe_model_generate(m, ids, PROMPT, NEW, &greedy, &rng, ids);
    if (st == MOE_OK) add_num(o, "generate_ms_per_token", (now_s() - t0) * 1e3 / NEW);
    return st;
}

/* Seed families: FLOPs per example and the test split's analyses. */
static void add_dense(const train_task *t, const moe_model *m, cJSON *o) {
    add_num(o, "params", (double)moe_model_param_count(m));
    add_num(o, "active_params", (double)moe_model_active_param_count(m));
    double active = moe_model_train_flops_per_token(m, 1) / 3;
    double dense = moe_model_all_experts_flops_per_token(m, 1) / 3;
    add_num(o, "flops_per_example_active", active);
    add_num(o, "flops_per_example_dense", dense);
    add_num(o, "flops_active_over_dense", dense > 0 ? active / dense : NAN);
    if (t->analysis.n_experts > 0)
        cJSON_AddItemToObject(o, "test_expert_analysis",
                              moe_expert_analysis_json(&t->analysis, t->class_names));
    if (t->gates.n_layers > 0)
        cJSON_AddItemToObject(o, "test_gate_sparsity", moe_gate_sparsity_json(&t->gates));
}

moe_status moe_evaluate(const moe_run_config *cfg, moe_model *m, int large_batch, int n_seq,
                        char **json) {
    *json = NULL;
    moe_run_config c = *cfg;
    c.model = *moe_model_config_of(m); /* the checkpoint's model, not the config's */
    if (large_batch > 0) c.train.batch_size = large_batch;
    train_task t;
    moe_model_set_phase(m, moe_model_final_temperature(&c.model), 0);
    moe_status st = task_init(&t, &c);
    moe_arena arena;
    moe_arena_init(&arena);
    cJSON *o = cJSON_CreateObject();
    task_eval val = {NAN, NAN, NAN}, test = {NAN, NAN, NAN};
    if (st == MOE_OK && !strcmp(c.train.device, "cuda")) { /* the GPU half: evaluate_cuda.c */
        if (t.kind != MOE_TASK_LM)
            st = moe_error(MOE_ERR_UNSUPPORTED, "eval --device cuda: language models only "
                                                "(train.task lm); evaluate this one on the cpu");
        if (st == MOE_OK) {
            cJSON_AddStringToObject(o, "task", "lm");
            cJSON_AddStringToObject(o, "family", moe_model_family_name(m));
            st = eval_lm_cuda(&c, &t, m, c.train.batch_size, n_seq, o);
        }
        goto done;
    }
    if (st == MOE_OK) st = task_evaluate(&t, m, &arena, &val);
    if (st == MOE_OK) st = task_test(&t, m, &arena, &test);
    if (st == MOE_OK) {
        static const char *const task_names[] = {"lm", "mlm", "classify", "distribution"};
        cJSON_AddStringToObject(o, "task", task_names[t.kind]);
        cJSON_AddStringToObject(o, "family", moe_model_family_name(m));
        add_num(o, "val_loss", val.loss);
        if (t.kind == MOE_TASK_LM) add_num(o, "val_ppl", exp(val.loss));
        if (t.kind == MOE_TASK_MLM) add_num(o, "val_masked_accuracy", val.accuracy);
        if (t.class_names) {
            add_num(o, "val_accuracy", val.accuracy);
            add_num(o, "val_macro_f1", val.macro_f1);
            cJSON *rep = NULL;
            st = moe_classify_report_json(&t.test, t.class_names, &rep);
            if (st == MOE_OK) cJSON_AddItemToObject(o, "test", rep);
        }
        if (t.dense) add_dense(&t, m, o);
    }
    if (st == MOE_OK) st = time_inference(&t, m, &arena, n_seq, o);
    if (st == MOE_OK && t.kind == MOE_TASK_LM) st = decode_latency(&t, m, o);
done:
    if (st == MOE_OK) {
        *json = cJSON_PrintUnformatted(o);
        if (!*json) st = moe_error(MOE_ERR_NOMEM, "eval: out of memory");
    }
    cJSON_Delete(o);
    moe_arena_free(&arena);
    task_free(&t);
    return st;
}
