/* Served models (src/serve/models*.c, batcher.c, infer.c, generate.c):
 * a small MoE decoder, an encoder classifier and an mlp_moe model are built
 * in code, saved as checkpoints with their run configs, and served: the
 * answers' shapes, batching of concurrent requests (each answer equal to
 * the request served alone), model-dependent 400s, reproducible seeded
 * generation, the routing fallback of a router holding a NaN row, and 503
 * on a full queue without done being called. */
#include "test_util.h"

#include "moe/analysis.h"
#include "moe/moe.h"
#include "scratch_dir.h"
#include "serve/models_internal.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- building the checkpoints ---------------------------------------- */

static void save_model(const char *dir, moe_run_config *run, int nan_router) {
    run->model.moe.d_model = run->model.d_model;
    assert_int_equal(moe_config_validate(run), MOE_OK);
    moe_model *m = NULL;
    assert_int_equal(moe_model_create(&m, &run->model, 7), MOE_OK);
    if (nan_router) { /* one row of the first router: every token's logits are NaN */
        int ti = moe_model_router_tensor(m, 0);
        assert_true(ti >= 0);
        const moe_tensor_info *info = &moe_model_table(m)->tensors[ti];
        moe_real *gate = moe_model_params(m) + info->offset;
        for (int64_t d = 0; d < info->shape[1]; d++) gate[info->shape[1] + d] = NAN;
    }
    char *mjson = moe_model_config_to_json(&run->model), *rjson = moe_config_to_json(run);
    moe_train_state st;
    memset(&st, 0, sizeof st);
    st.run_config = rjson;
    assert_int_equal(
        moe_checkpoint_save(dir, mjson, moe_model_table(m), moe_model_params(m), NULL, &st),
        MOE_OK);
    free(mjson);
    free(rjson);
    moe_model_free(m);
}

static void decoder_config(moe_run_config *c) {
    moe_config_defaults(c);
    moe_model_config *m = &c->model;
    m->vocab_size = 256;
    m->max_seq_len = 32;
    m->n_layer = 2;
    m->d_model = 16;
    m->n_head = 2;
    m->n_kv_head = 2;
    m->moe_every = 1;
    m->d_ff = 32;
    m->moe.n_experts = 4;
    m->moe.top_k = 2;
    m->moe.d_ff = 16;
    m->moe.capacity_factor = 1.0f; /* served dropless all the same */
    c->train.seq_len = 32;
}

static void write_csv(const char *path) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "a,b,c,d,kind\n");
    for (int i = 0; i < 60; i++)
        fprintf(fp, "%g,%g,%g,%g,%s\n", 5 + (i % 7) * 0.3, 100 + (i % 5) * 10.0, -2.0 + (i % 3),
                0.1 * (i % 11),
                i % 3 == 0   ? "x"
                : i % 3 == 1 ? "y"
                             : "z");
    fclose(fp);
}

static int setup(void **state) {
    if (scratch_setup(state)) return -1;
    moe_run_config c;
    decoder_config(&c);
    save_model(scratch_path("models/dec/checkpoints/best"), &c, 0); /* a run directory */
    save_model(scratch_path("nan/ckpt"), &c, 1);
    c.model.vocab_size = 128; /* byte-level, ASCII only: legal with data.source=file */
    snprintf(c.data.source, sizeof c.data.source, "file");
    snprintf(c.data.path, sizeof c.data.path, "ascii.txt");
    save_model(scratch_path("small/ckpt"), &c, 0);
    decoder_config(&c);
    c.model.post_ln = 1; /* scores text, but generation has no post-norm path */
    save_model(scratch_path("post/ckpt"), &c, 0);
    decoder_config(&c);

    decoder_config(&c);
    c.model.vocab_size = 256 + MOE_TOK_N_SPECIAL; /* "bytes" and its special tokens */
    c.model.bidirectional = 1;
    c.model.n_classes = 2;
    c.model.pool = MOE_POOL_MEAN;
    c.model.n_layer = 1;
    c.train.task = MOE_TASK_CLASSIFY;
    snprintf(c.data.source, sizeof c.data.source, "spam");
    snprintf(c.data.tokenizer, sizeof c.data.tokenizer, "bytes");
    save_model(scratch_path("models/enc"), &c, 0);

    moe_config_defaults(&c);
    c.model.family = MOE_FAMILY_MLP_MOE;
    c.model.input.features = 4;
    c.model.n_classes = 3;
    c.model.mlp.hidden = 8;
    c.model.moe.n_experts = 3;
    c.model.moe.top_k = 2;
    c.model.moe.noisy = 1;
    c.train.task = MOE_TASK_CLASSIFY;
    snprintf(c.data.source, sizeof c.data.source, "csv");
    snprintf(c.data.path, sizeof c.data.path, "%s", scratch_path("table.csv"));
    c.data.normalize = 1;
    c.data.val_fraction = 0.2f;
    c.data.test_fraction = 0.2f;
    write_csv(scratch_path("table.csv"));
    save_model(scratch_path("models/mlp"), &c, 0);
    mkdir(scratch_path("models/.hidden"), 0700); /* skipped: not a model name */
    mkdir(scratch_path("models/empty"), 0700);   /* skipped: no checkpoint */
    return 0;
}

/* ---- submitting and waiting ------------------------------------------ */

typedef struct call {
    serve_reply reply;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int block; /* the done callback waits until unblocked */
    int unblock;
} call;

static void call_init(call *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void on_done(void *user) {
    call *c = user;
    pthread_mutex_lock(&c->mu);
    c->done++;
    pthread_cond_broadcast(&c->cv);
    while (c->block && !c->unblock) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void call_wait(call *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void call_free(call *c) {
    free(c->reply.body);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static serve_limits limits(void) {
    serve_limits l;
    serve_limits_default(&l);
    return l;
}

/* Waits for c's reply; returns it parsed, its status in *status. */
static cJSON *call_answer(call *c, int *status) {
    call_wait(c);
    *status = c->reply.status;
    cJSON *o = cJSON_Parse(c->reply.body);
    assert_non_null(o);
    call_free(c);
    return o;
}

/* Parses body, submits it, waits; returns the reply parsed. */
static cJSON *infer_now(serve_models *ms, const char *body, int *status) {
    serve_limits l = limits();
    serve_infer_request rq;
    serve_error e;
    assert_int_equal(serve_parse_infer(body, strlen(body), &l, &rq, &e), MOE_OK);
    serve_model *m = serve_models_find(ms, rq.model);
    assert_non_null(m);
    call c;
    call_init(&c);
    assert_int_equal(serve_infer_submit(m, &rq, &c.reply, on_done, &c, &e), MOE_OK);
    serve_infer_request_free(&rq);
    return call_answer(&c, status);
}

static cJSON *generate_now(serve_models *ms, const char *body, int *status) {
    serve_limits l = limits();
    serve_generate_request rq;
    serve_error e;
    assert_int_equal(serve_parse_generate(body, strlen(body), &l, &rq, &e), MOE_OK);
    call c;
    call_init(&c);
    assert_int_equal(
        serve_generate_submit(serve_models_find(ms, rq.model), &rq, &c.reply, on_done, &c, &e),
        MOE_OK);
    serve_generate_request_free(&rq);
    return call_answer(&c, status);
}

static serve_models *open_models(const serve_limits *l, int fallback, moe_registry *reg) {
    serve_models *ms = NULL;
    const char *extra[] = {NULL};
    char nan_arg[4200];
    snprintf(nan_arg, sizeof nan_arg, "nan=%s", scratch_path("nan/ckpt"));
    extra[0] = nan_arg;
    moe_status st = serve_models_open(&ms, scratch_path("models"), extra, 1, l, fallback, reg);
    if (st) print_error("%s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    return ms;
}

static const cJSON *item(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) print_error("no \"%s\" in %s\n", key, cJSON_PrintUnformatted(o));
    assert_non_null(v);
    return v;
}

static void expect_400(serve_models *ms, const char *body, const char *field) {
    int status;
    cJSON *o = infer_now(ms, body, &status);
    assert_int_equal(status, 400);
    const cJSON *err = item(o, "error");
    assert_string_equal(item(err, "field")->valuestring, field);
    cJSON_Delete(o);
}

/* ---- tests ------------------------------------------------------------ */

static void test_shapes(void **state) {
    (void)state;
    serve_limits l = limits();
    l.batch_window_ms = 0;
    serve_models *ms = open_models(&l, -1, NULL);
    char *list = serve_models_list_json(ms);
    cJSON *lo = cJSON_Parse(list);
    free(list);
    assert_int_equal(cJSON_GetArraySize(item(lo, "models")), 4); /* dec, enc, mlp, nan */
    const cJSON *first = cJSON_GetArrayItem(item(lo, "models"), 0);
    assert_string_equal(item(first, "name")->valuestring, "dec");
    assert_string_equal(item(first, "input")->valuestring, "text");
    assert_true(cJSON_IsTrue(item(first, "generate")));
    const cJSON *mlp = cJSON_GetArrayItem(item(lo, "models"), 2);
    assert_string_equal(item(mlp, "family")->valuestring, "mlp_moe");
    assert_int_equal(item(mlp, "n_features")->valueint, 4);
    assert_true(cJSON_IsTrue(item(mlp, "rows_normalized_by_server")));
    assert_string_equal(cJSON_GetArrayItem(item(mlp, "class_names"), 1)->valuestring, "y");
    cJSON_Delete(lo);
    assert_null(serve_models_find(ms, "../nan"));
    assert_null(serve_models_find(ms, "empty"));

    int status;
    cJSON *o = infer_now(ms, "{\"model\": \"dec\", \"text\": [\"In the\", \"a\"], \"trace\": true}",
                         &status);
    assert_int_equal(status, 200);
    assert_string_equal(item(o, "task")->valuestring, "lm");
    assert_string_equal(item(o, "family")->valuestring, "transformer");
    const cJSON *out0 = cJSON_GetArrayItem(item(o, "outputs"), 0);
    assert_int_equal(item(out0, "n_tokens")->valueint, 6);
    assert_true(isfinite(item(out0, "loss")->valuedouble));
    assert_int_equal(cJSON_GetArraySize(item(out0, "next")), 5);
    const cJSON *cand = cJSON_GetArrayItem(item(out0, "next"), 0);
    assert_true(item(cand, "prob")->valuedouble > 0);
    item(cand, "text");
    const cJSON *tr = item(item(out0, "trace"), "tokens");
    assert_int_equal(cJSON_GetArraySize(tr), 6);
    const cJSON *lay = cJSON_GetArrayItem(item(cJSON_GetArrayItem(tr, 0), "layers"), 1);
    assert_int_equal(item(lay, "layer")->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(item(lay, "experts")), 2);
    assert_true(cJSON_IsFalse(item(lay, "fallback")));
    const cJSON *out1 = cJSON_GetArrayItem(item(o, "outputs"), 1);
    assert_true(cJSON_IsNull(item(out1, "loss"))); /* one token */
    assert_int_equal(item(item(o, "usage"), "tokens")->valueint, 7);
    assert_int_equal(item(o, "batch_size")->valueint, 1);
    cJSON_Delete(o);

    o = infer_now(ms, "{\"model\": \"enc\", \"text\": \"cheap pills\"}", &status);
    assert_int_equal(status, 200);
    assert_string_equal(item(o, "task")->valuestring, "classify");
    out0 = cJSON_GetArrayItem(item(o, "outputs"), 0);
    const char *label = item(out0, "label")->valuestring;
    assert_true(strcmp(label, "ham") == 0 || strcmp(label, "spam") == 0);
    assert_int_equal(cJSON_GetArraySize(item(out0, "probs")), 2);
    assert_int_equal(item(item(o, "usage"), "tokens")->valueint, 12); /* [CLS] + 11 bytes */
    cJSON_Delete(o);

    o = infer_now(ms, "{\"model\": \"mlp\", \"rows\": [[5, 100, -2, 0.3], [6, 120, 0, 1]]}",
                  &status);
    assert_int_equal(status, 200);
    assert_string_equal(item(o, "family")->valuestring, "mlp_moe");
    assert_int_equal(cJSON_GetArraySize(item(o, "outputs")), 2);
    out0 = cJSON_GetArrayItem(item(o, "outputs"), 0);
    double sum = 0;
    for (int c = 0; c < 3; c++) sum += cJSON_GetArrayItem(item(out0, "probs"), c)->valuedouble;
    assert_close(sum, 1, 1e-6);
    item(out0, "class");
    cJSON_Delete(o);

    /* model-dependent 400s name their field */
    expect_400(ms, "{\"model\": \"dec\", \"tokens\": [1, 300]}", "tokens[1]");
    expect_400(ms, "{\"model\": \"dec\", \"tokens\": [[1], [2, 3, 256]]}", "tokens[1][2]");
    expect_400(ms, "{\"model\": \"dec\", \"tokens\": [[1, 300]]}", "tokens[0][1]");
    /* too long: a flat list is "tokens" (not its first id), a list of lists names the list */
    char body[512];
    int at = snprintf(body, sizeof body, "{\"model\": \"dec\", \"tokens\": [1");
    for (int i = 1; i < 33; i++) at += snprintf(body + at, sizeof body - at, ", %d", i);
    snprintf(body + at, sizeof body - at, "]}");
    expect_400(ms, body, "tokens");
    at = snprintf(body, sizeof body, "{\"model\": \"dec\", \"tokens\": [[1], [1");
    for (int i = 1; i < 33; i++) at += snprintf(body + at, sizeof body - at, ", %d", i);
    snprintf(body + at, sizeof body - at, "]]}");
    expect_400(ms, body, "tokens[1]");
    expect_400(ms, "{\"model\": \"mlp\", \"rows\": [[1, 2, 3]]}", "rows[0]");
    expect_400(ms, "{\"model\": \"mlp\", \"text\": \"a\"}", "text");
    expect_400(ms, "{\"model\": \"mlp\", \"rows\": [[1, 2, 3, 4]], \"trace\": true}", "trace");
    expect_400(ms, "{\"model\": \"dec\", \"rows\": [[1]]}", "rows");
    expect_400(ms, "{\"model\": \"dec\", \"text\": \"0123456789012345678901234567890123\"}",
               "text");
    o = generate_now(ms, "{\"model\": \"dec\", \"prompt_tokens\": [1, 300]}", &status);
    assert_int_equal(status, 400);
    assert_string_equal(item(item(o, "error"), "field")->valuestring, "prompt_tokens[1]");
    cJSON_Delete(o);
    o = generate_now(ms, "{\"model\": \"enc\", \"prompt\": \"a\"}", &status);
    assert_int_equal(status, 400);
    assert_string_equal(item(item(o, "error"), "field")->valuestring, "model");
    cJSON_Delete(o);
    serve_models_close(ms);
}

typedef struct sender {
    serve_model *m;
    const char *body;
    call c;
} sender;

static void *send_one(void *arg) {
    sender *s = arg;
    serve_limits l = limits();
    serve_infer_request rq;
    serve_error e;
    if (serve_parse_infer(s->body, strlen(s->body), &l, &rq, &e) ||
        serve_infer_submit(s->m, &rq, &s->c.reply, on_done, &s->c, &e)) {
        serve_infer_request_free(&rq);
        return NULL;
    }
    serve_infer_request_free(&rq);
    call_wait(&s->c);
    return s;
}

/* The numbers of an answer (losses, probabilities) as a flat list. */
static int numbers(const cJSON *o, double *v, int n) {
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        if (c->string && (strcmp(c->string, "batch_size") == 0)) continue;
        if (cJSON_IsNumber(c)) v[n++] = c->valuedouble;
        n = numbers(c, v, n);
    }
    return n;
}

static void test_batching_matches_alone(void **state) {
    (void)state;
    enum { N = 8 };
    const char *bodies[N] = {
        "{\"model\": \"dec\", \"text\": \"In the beginning\"}",
        "{\"model\": \"dec\", \"text\": [\"God\", \"created the heaven\"]}",
        "{\"model\": \"dec\", \"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}",
        "{\"model\": \"dec\", \"text\": \"x\", \"trace\": true}",
        "{\"model\": \"enc\", \"text\": \"win money now\"}",
        "{\"model\": \"enc\", \"text\": [\"hello bob, the meeting\", \"hi\"]}",
        "{\"model\": \"mlp\", \"rows\": [[5, 100, -2, 0.3]]}",
        "{\"model\": \"mlp\", \"rows\": [[6, 120, 0, 1], [5.3, 110, -1, 0.5]]}",
    };
    serve_limits l = limits();
    l.batch_window_ms = 0;
    serve_models *ms = open_models(&l, -1, NULL);
    double *alone[N];
    int n_alone[N];
    for (int i = 0; i < N; i++) {
        int status;
        cJSON *o = infer_now(ms, bodies[i], &status);
        assert_int_equal(status, 200);
        alone[i] = malloc(4096 * sizeof(double));
        n_alone[i] = numbers(o, alone[i], 0);
        cJSON_Delete(o);
    }
    serve_models_close(ms);

    l.batch_window_ms = 200; /* the worker waits for company */
    ms = open_models(&l, -1, NULL);
    int batched = 0;
    for (int round = 0; round < 3 && !batched; round++) {
        sender s[3 * N];
        pthread_t th[3 * N];
        for (int i = 0; i < 3 * N; i++) {
            const char *b = bodies[i % N];
            char model[8];
            sscanf(b, "{\"model\": \"%3s", model);
            s[i].m = serve_models_find(ms, model);
            s[i].body = b;
            call_init(&s[i].c);
            assert_int_equal(pthread_create(&th[i], NULL, send_one, &s[i]), 0);
        }
        for (int i = 0; i < 3 * N; i++) {
            void *r;
            pthread_join(th[i], &r);
            assert_non_null(r);
            assert_int_equal(s[i].c.reply.status, 200);
            cJSON *o = cJSON_Parse(s[i].c.reply.body);
            if (item(o, "batch_size")->valueint > 1) batched = 1;
            double v[4096];
            int n = numbers(o, v, 0);
            assert_int_equal(n, n_alone[i % N]);
            for (int k = 0; k < n; k++) assert_close(v[k], alone[i % N][k], 1e-5);
            cJSON_Delete(o);
            call_free(&s[i].c);
        }
    }
    assert_true(batched);
    serve_models_close(ms);
    for (int i = 0; i < N; i++) free(alone[i]);
}

static void test_generate_reproducible(void **state) {
    (void)state;
    serve_limits l = limits();
    serve_models *ms = open_models(&l, -1, NULL);
    const char *b = "{\"model\": \"dec\", \"prompt\": \"In the\", \"max_tokens\": 12, "
                    "\"temperature\": 1, \"seed\": 42, \"trace\": true}";
    int status;
    cJSON *a = generate_now(ms, b, &status);
    assert_int_equal(status, 200);
    cJSON *c = generate_now(ms, b, &status);
    assert_int_equal(status, 200);
    char *sa = cJSON_PrintUnformatted(item(a, "tokens")),
         *sc = cJSON_PrintUnformatted(item(c, "tokens"));
    assert_string_equal(sa, sc);
    assert_string_equal(item(a, "text")->valuestring, item(c, "text")->valuestring);
    assert_int_equal(cJSON_GetArraySize(item(a, "tokens")), 12);
    assert_int_equal(item(item(a, "usage"), "prompt_tokens")->valueint, 6);
    assert_int_equal(item(item(a, "usage"), "completion_tokens")->valueint, 12);
    assert_int_equal(cJSON_GetArraySize(item(item(a, "trace"), "tokens")), 12);
    free(sa);
    free(sc);
    cJSON_Delete(a);
    cJSON_Delete(c);
    serve_models_close(ms);
}

static void test_fallback(void **state) {
    (void)state;
    serve_limits l = limits();
    moe_registry *reg = NULL;
    assert_int_equal(moe_registry_create(&reg, "moe"), MOE_OK);
    /* an expert the models do not have */
    serve_models *ms = NULL;
    assert_int_equal(serve_models_open(&ms, scratch_path("models"), NULL, 0, &l, 4, reg),
                     MOE_ERR_INVALID);
    ms = open_models(&l, 1, reg);
    int status;
    cJSON *o =
        infer_now(ms, "{\"model\": \"nan\", \"text\": \"In the\", \"trace\": true}", &status);
    assert_int_equal(status, 200);
    const cJSON *out0 = cJSON_GetArrayItem(item(o, "outputs"), 0);
    assert_true(isfinite(item(out0, "loss")->valuedouble));
    const cJSON *cand;
    for (cand = item(out0, "next")->child; cand; cand = cand->next)
        assert_true(isfinite(item(cand, "prob")->valuedouble));
    const cJSON *tok0 = cJSON_GetArrayItem(item(item(out0, "trace"), "tokens"), 0);
    const cJSON *lay0 = cJSON_GetArrayItem(item(tok0, "layers"), 0);
    assert_true(cJSON_IsTrue(item(lay0, "fallback")));
    assert_int_equal(cJSON_GetArrayItem(item(lay0, "experts"), 0)->valueint, 1);
    /* the other slot is a weight-0 filler: no traffic, not kept */
    assert_true(cJSON_IsTrue(cJSON_GetArrayItem(item(lay0, "kept"), 0)));
    assert_true(cJSON_IsFalse(cJSON_GetArrayItem(item(lay0, "kept"), 1)));
    cJSON_Delete(o);
    char *text = NULL;
    assert_int_equal(moe_registry_render_prometheus(reg, &text), MOE_OK);
    assert_non_null(strstr(text, "moe_serve_fallback_total{model=\"nan\"} 6"));
    assert_non_null(strstr(text, "moe_serve_tokens_total{model=\"nan\"} 6"));
    assert_non_null(
        strstr(text, "moe_serve_expert_pairs_total{model=\"nan\",layer=\"0\",expert=\"1\"} 6"));
    assert_non_null(strstr(text, "moe_serve_batch_size_count{model=\"nan\"} 1"));
    /* layer 0's served pairs: one per token (the fallback expert), not k */
    double layer0 = 0;
    for (const char *at = text;
         (at = strstr(at, "moe_serve_expert_pairs_total{model=\"nan\",layer=\"0\""));) {
        at = strchr(at, '}');
        layer0 += strtod(at + 1, NULL);
    }
    assert_close(layer0, 6, 0);
    free(text);
    /* the same checkpoint without the fallback: its outputs are NaN, which
     * the server reports as an error naming the cure, not as numbers */
    serve_models_close(ms);
    ms = open_models(&l, -1, reg);
    o = infer_now(ms, "{\"model\": \"nan\", \"text\": \"In the\"}", &status);
    assert_int_equal(status, 500);
    const cJSON *msg = item(item(o, "error"), "message");
    assert_non_null(strstr(msg->valuestring, "--fallback-expert"));
    cJSON_Delete(o);
    /* nor does generation sample from NaN logits */
    o = generate_now(ms, "{\"model\": \"nan\", \"prompt\": \"In\", \"max_tokens\": 4}", &status);
    assert_int_equal(status, 500);
    assert_non_null(strstr(item(item(o, "error"), "message")->valuestring, "not finite"));
    cJSON_Delete(o);
    serve_models_close(ms);
    moe_registry_free(reg);
}

/* Queues body on m without waiting (the worker batches what is queued). */
static void submit(serve_model *m, const char *body, call *c) {
    serve_limits l = limits();
    serve_infer_request rq;
    serve_error e;
    call_init(c);
    assert_int_equal(serve_parse_infer(body, strlen(body), &l, &rq, &e), MOE_OK);
    assert_int_equal(serve_infer_submit(m, &rq, &c->reply, on_done, c, &e), MOE_OK);
    serve_infer_request_free(&rq);
}

/* A byte-level decoder with a vocabulary of 128: a text byte >= 128 is
 * refused with 400 before the forward, so the valid request batched with
 * it is answered (the forward would have refused the whole batch). */
static void test_text_outside_vocab(void **state) {
    (void)state;
    serve_limits l = limits();
    l.batch_window_ms = 300;
    l.window_always = 1; /* the two requests below go into one batch */
    char arg[4200];
    snprintf(arg, sizeof arg, "small=%s", scratch_path("small/ckpt"));
    const char *extra[] = {arg};
    serve_models *ms = NULL;
    assert_int_equal(serve_models_open(&ms, NULL, extra, 1, &l, -1, NULL), MOE_OK);
    serve_model *m = serve_models_find(ms, "small");
    call bad, good, bad2;
    submit(m, "{\"model\": \"small\", \"text\": \"caf\u00e9\"}", &bad);
    submit(m, "{\"model\": \"small\", \"text\": \"cafe\"}", &good);
    submit(m, "{\"model\": \"small\", \"text\": [\"ok\", \"na\u00efve\"]}", &bad2);
    call_wait(&bad);
    call_wait(&good);
    call_wait(&bad2);
    cJSON *o = cJSON_Parse(bad.reply.body);
    if (bad.reply.status != 400) print_error("%s\n", bad.reply.body);
    assert_int_equal(bad.reply.status, 400);
    assert_string_equal(item(item(o, "error"), "field")->valuestring, "text");
    assert_non_null(strstr(item(item(o, "error"), "message")->valuestring, "vocabulary size 128"));
    cJSON_Delete(o);
    o = cJSON_Parse(bad2.reply.body);
    assert_int_equal(bad2.reply.status, 400);
    assert_string_equal(item(item(o, "error"), "field")->valuestring, "text[1]");
    cJSON_Delete(o);
    if (good.reply.status != 200) print_error("%s\n", good.reply.body);
    assert_int_equal(good.reply.status, 200);
    call_free(&bad);
    call_free(&good);
    call_free(&bad2);
    /* ids as tokens: the same bound, naming the id */
    expect_400(ms, "{\"model\": \"small\", \"tokens\": [1, 128]}", "tokens[1]");
    serve_models_close(ms);
}

/* A post-norm decoder: /v1/models says it does not generate, and
 * /v1/generate answers 400 naming the model, not 500. */
static void test_post_norm_does_not_generate(void **state) {
    (void)state;
    serve_limits l = limits();
    char arg[4200];
    snprintf(arg, sizeof arg, "post=%s", scratch_path("post/ckpt"));
    const char *extra[] = {arg};
    serve_models *ms = NULL;
    assert_int_equal(serve_models_open(&ms, NULL, extra, 1, &l, -1, NULL), MOE_OK);
    char *list = serve_models_list_json(ms);
    cJSON *lo = cJSON_Parse(list);
    free(list);
    const cJSON *post = cJSON_GetArrayItem(item(lo, "models"), 0);
    assert_string_equal(item(post, "task")->valuestring, "lm");
    assert_true(cJSON_IsFalse(item(post, "generate")));
    cJSON_Delete(lo);
    int status;
    cJSON *o = generate_now(ms, "{\"model\": \"post\", \"prompt\": \"In\"}", &status);
    assert_int_equal(status, 400);
    assert_string_equal(item(item(o, "error"), "field")->valuestring, "model");
    cJSON_Delete(o);
    o = infer_now(ms, "{\"model\": \"post\", \"text\": \"In the\"}", &status);
    assert_int_equal(status, 200);
    cJSON_Delete(o);
    serve_models_close(ms);
}

typedef struct burst {
    serve_model *m;
    int n;
} burst;

static void *send_burst(void *arg) {
    const burst *b = arg;
    call c[4];
    for (int r = 0; r < b->n; r++) {
        for (int i = 0; i < 4; i++) submit(b->m, "{\"model\": \"dec\", \"text\": \"a\"}", &c[i]);
        for (int i = 0; i < 4; i++) {
            call_wait(&c[i]);
            call_free(&c[i]);
        }
    }
    return NULL;
}

static double depth_gauge(moe_registry *reg) {
    moe_metric *m = NULL;
    assert_int_equal(moe_registry_declare(reg, "serve_queue_depth", MOE_METRIC_GAUGE,
                                          "Requests waiting for the model's worker.", "model", NULL,
                                          0, &m),
                     MOE_OK);
    const char *lv[] = {"dec"};
    return moe_metric_value(m, lv);
}

/* The queue-depth gauge of an idle model is 0 after bursts from several
 * threads: submitters and the worker set it under the queue's lock, so a
 * stale depth cannot land last. (A narrow race: this guards the idle value
 * but is not certain to catch a regression in any one run.) */
static void test_queue_depth_gauge_settles(void **state) {
    (void)state;
    serve_limits l = limits();
    l.batch_window_ms = 0;
    moe_registry *reg = NULL;
    assert_int_equal(moe_registry_create(&reg, "moe"), MOE_OK);
    serve_models *ms = open_models(&l, -1, reg);
    enum { THREADS = 6 };
    for (int round = 0; round < 10; round++) {
        burst b = {serve_models_find(ms, "dec"), 5};
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, send_burst, &b), 0);
        for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
        assert_int_equal(serve_models_queue_depth(ms), 0);
        double gauge = depth_gauge(reg);
        if (gauge != 0)
            fail_msg("round %d: an idle model's queue-depth gauge says %g", round, gauge);
    }
    serve_models_close(ms);
    moe_registry_free(reg);
}

/* The non-finite check both /v1/infer and /v1/generate answers go through
 * (500 instead of NaN in JSON): any number at any depth; null is absent. */
static void test_nonfinite_check(void **state) {
    (void)state;
    cJSON *o = cJSON_Parse("{\"a\": [1, {\"b\": 2.5}], \"c\": null, \"d\": \"x\"}");
    assert_false(serve_has_nonfinite(o));
    cJSON *inner = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "a"), 1), "b");
    cJSON_SetNumberValue(inner, NAN);
    assert_true(serve_has_nonfinite(o));
    cJSON_SetNumberValue(inner, -INFINITY);
    assert_true(serve_has_nonfinite(o));
    cJSON_Delete(o);
}

/* One rendering of a token's text everywhere (next-token candidates,
 * traces, moe route): ASCII bytes as themselves, anything that is not a
 * whole UTF-8 character as U+FFFD. */
static void test_token_display_text(void **state) {
    (void)state;
    const struct {
        int32_t id;
        const char *want;
    } cases[] = {{'a', "a"},
                 {'\n', "\n"},
                 {0, "\xEF\xBF\xBD"},
                 {0xE9, "\xEF\xBF\xBD"},
                 {300, "\xEF\xBF\xBD"},
                 {-1, "\xEF\xBF\xBD"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = moe_token_display_text(NULL, cases[i].id);
        assert_non_null(t);
        assert_string_equal(t, cases[i].want);
        free(t);
    }
}

static void test_queue_full(void **state) {
    (void)state;
    serve_limits l = limits();
    l.max_queue = 1;
    l.batch_window_ms = 0;
    serve_models *ms = open_models(&l, -1, NULL);
    serve_model *m = serve_models_find(ms, "dec");
    const char *b = "{\"model\": \"dec\", \"text\": \"a\"}";
    call c[3];
    serve_infer_request rq;
    serve_error e;
    for (int i = 0; i < 3; i++) call_init(&c[i]);
    c[0].block = 1; /* its done holds the worker */
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &rq, &e), MOE_OK);
    assert_int_equal(serve_infer_submit(m, &rq, &c[0].reply, on_done, &c[0], &e), MOE_OK);
    call_wait(&c[0]);
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &rq, &e), MOE_OK);
    assert_int_equal(serve_infer_submit(m, &rq, &c[1].reply, on_done, &c[1], &e), MOE_OK);
    assert_int_equal(serve_models_queue_depth(ms), 1);
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &rq, &e), MOE_OK);
    assert_int_equal(serve_infer_submit(m, &rq, &c[2].reply, on_done, &c[2], &e), MOE_ERR_IO);
    assert_int_equal(e.status, 503);
    assert_non_null(rq.texts); /* still the caller's */
    serve_infer_request_free(&rq);
    pthread_mutex_lock(&c[0].mu);
    c[0].unblock = 1;
    pthread_cond_broadcast(&c[0].cv);
    pthread_mutex_unlock(&c[0].mu);
    call_wait(&c[1]);
    assert_int_equal(c[1].reply.status, 200);
    serve_models_close(ms);
    assert_int_equal(c[2].done, 0);
    assert_null(c[2].reply.body);
    for (int i = 0; i < 3; i++) call_free(&c[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_batching_matches_alone),
        cmocka_unit_test(test_generate_reproducible),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_text_outside_vocab),
        cmocka_unit_test(test_post_norm_does_not_generate),
        cmocka_unit_test(test_queue_depth_gauge_settles),
        cmocka_unit_test(test_nonfinite_check),
        cmocka_unit_test(test_token_display_text),
        cmocka_unit_test(test_queue_full),
    };
    return cmocka_run_group_tests(tests, setup, scratch_teardown);
}
