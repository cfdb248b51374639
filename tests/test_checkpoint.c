/* Checkpoint folders: round trip of parameters, optimizer state and training
 * state; atomic replacement; failed saves and damaged files leave the
 * previous checkpoint loadable and say why. */
#include "test_util.h"

#include "scratch_dir.h"

#include "moe/checkpoint.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int has(const char *needle) {
    if (strstr(moe_last_error(), needle)) return 1;
    print_error("message \"%s\" lacks \"%s\"\n", moe_last_error(), needle);
    return 0;
}

static const char *CONFIG = "{\n  \"n_layer\": 2,\n  \"d_model\": 8\n}\n";

typedef struct model {
    moe_param_table t;
    moe_real *params; /* [t.total] */
    moe_optim opt;    /* Adam-like, 2 slots */
} model;

static void model_init(model *m, double seed) {
    static const int64_t s0[] = {16, 8}, s1[] = {2, 8, 12}, s2[] = {8};
    moe_params_init(&m->t);
    moe_params_add(&m->t, "model.embed_tokens.weight", 2, s0);
    moe_params_add(&m->t, "model.layers.0.mlp.experts.w1", 3, s1);
    moe_params_add(&m->t, "model.norm.weight", 1, s2);
    m->params = calloc(m->t.total, sizeof *m->params);
    memset(&m->opt, 0, sizeof m->opt);
    m->opt.cfg.kind = MOE_OPT_ADAMW;
    m->opt.cfg.lr = 1e-3f;
    m->opt.n = m->t.total;
    m->opt.n_slots = 2;
    m->opt.state = calloc(2 * m->t.total, sizeof *m->opt.state);
    m->opt.step = (long)seed;
    for (size_t i = 0; i < m->t.total; i++) {
        m->params[i] = (moe_real)sin(seed + 0.37 * (double)i);
        m->opt.state[i] = (moe_real)cos(seed * (double)i);
        m->opt.state[m->t.total + i] = (moe_real)(1e-4 * (double)i + seed);
    }
}

static void model_free(model *m) {
    free(m->params);
    free(m->opt.state);
    moe_params_free(&m->t);
}

/* Every tensor of a equals b's (padding between tensors is not saved). */
static void assert_same(const model *a, const model *b) {
    for (int i = 0; i < a->t.count; i++) {
        const moe_tensor_info *ti = &a->t.tensors[i];
        size_t bytes = ti->numel * sizeof(moe_real);
        assert_memory_equal(a->params + ti->offset, b->params + ti->offset, bytes);
        for (int s = 0; s < 2; s++)
            assert_memory_equal(a->opt.state + s * a->t.total + ti->offset,
                                b->opt.state + s * b->t.total + ti->offset, bytes);
    }
    assert_int_equal(a->opt.step, b->opt.step);
}

static void train_state(moe_train_state *st, uint64_t seed) {
    memset(st, 0, sizeof *st);
    st->step = 1234;
    st->tokens_seen = 9876543210LL;
    st->best_metric = 2.718281828459045;
    st->bad_evals = 3;
    moe_rng_seed(&st->rng, seed);
    moe_rng_seed(&st->data_rng, seed + 1);
    for (int i = 0; i < 17; i++) moe_rng_u64(&st->rng); /* mid-stream */
    st->run_config = "{\"name\": \"tiny\"}";
}

static void test_round_trip(void **state) {
    (void)state;
    model a, b;
    model_init(&a, 1.0);
    model_init(&b, 0.0);
    b.opt.step = 0;
    moe_train_state st, back;
    train_state(&st, 99);
    const char *dir = scratch_path("run/checkpoints/latest"); /* parents created */
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, &st), MOE_OK);

    char *cfg = NULL;
    assert_int_equal(moe_checkpoint_read_config(dir, &cfg), MOE_OK);
    assert_string_equal(cfg, CONFIG); /* verbatim */
    free(cfg);
    char *rc = NULL;
    assert_int_equal(moe_checkpoint_read_run_config(dir, &rc), MOE_OK);
    assert_string_equal(rc, st.run_config);
    free(rc);

    memset(&back, 0, sizeof back);
    assert_int_equal(moe_checkpoint_load(dir, &b.t, b.params, &b.opt, &back), MOE_OK);
    assert_same(&a, &b);
    assert_int_equal(back.step, 1234);
    assert_true(back.tokens_seen == 9876543210LL);
    assert_true(back.best_metric == st.best_metric);
    assert_int_equal(back.bad_evals, 3);
    /* both generators continue the same streams */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(moe_rng_u64(&back.rng), moe_rng_u64(&st.rng));
        assert_int_equal(moe_rng_u64(&back.data_rng), moe_rng_u64(&st.data_rng));
    }

    /* params only (inference) and an infinite best metric */
    st.best_metric = INFINITY;
    st.run_config = NULL;
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, NULL, &st), MOE_OK);
    model c;
    model_init(&c, 5.0);
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, NULL, &back), MOE_OK);
    assert_true(isinf(back.best_metric) && back.best_metric > 0);
    assert_int_equal(moe_checkpoint_read_run_config(dir, &rc), MOE_OK);
    assert_null(rc);
    for (int i = 0; i < a.t.count; i++) {
        const moe_tensor_info *ti = &a.t.tensors[i];
        assert_memory_equal(c.params + ti->offset, a.params + ti->offset,
                            ti->numel * sizeof(moe_real));
    }
    /* resuming training needs the optimizer state it lacks */
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, NULL), MOE_ERR_FORMAT);
    assert_true(has("saved without optimizer state"));
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

/* Names in a folder, sorted, joined with spaces. */
static void list_dir(const char *path, char *out, size_t cap) {
    char names[16][64];
    int n = 0;
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < 16)
        if (e->d_name[0] != '.') snprintf(names[n++], 64, "%.63s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(out, names[i], cap - strlen(out) - 2);
        if (i + 1 < n) strcat(out, " ");
    }
}

static void test_atomic_replacement(void **state) {
    (void)state;
    model a, b, c;
    model_init(&a, 1.0);
    model_init(&b, 2.0);
    model_init(&c, 0.0);
    const char *dir = scratch_path("replace/latest");
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, NULL), MOE_OK);
    assert_int_equal(moe_checkpoint_save(dir, "{\"v\": 2}", &b.t, b.params, &b.opt, NULL), MOE_OK);
    char names[256];
    list_dir(scratch_path("replace"), names, sizeof names);
    assert_string_equal(names, "latest"); /* no .tmp or .old left */
    list_dir(dir, names, sizeof names);
    assert_string_equal(names, "config.json model.safetensors optimizer.safetensors train.json");
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, NULL), MOE_OK);
    assert_same(&b, &c);
    char *cfg;
    assert_int_equal(moe_checkpoint_read_config(dir, &cfg), MOE_OK);
    assert_string_equal(cfg, "{\"v\": 2}");
    free(cfg);
    /* a trailing slash names the same folder */
    char slash[200];
    snprintf(slash, sizeof slash, "%s/", dir);
    assert_int_equal(moe_checkpoint_save(slash, CONFIG, &a.t, a.params, &a.opt, NULL), MOE_OK);
    list_dir(scratch_path("replace"), names, sizeof names);
    assert_string_equal(names, "latest");
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

static void test_failed_saves_keep_previous(void **state) {
    (void)state;
    model a, b, c;
    model_init(&a, 1.0);
    model_init(&b, 2.0);
    model_init(&c, 0.0);
    const char *dir = scratch_path("fail/latest");
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, NULL), MOE_OK);

    /* the parent of the target is a regular file */
    FILE *f = fopen(scratch_path("fail/afile"), "w");
    fclose(f);
    assert_int_equal(
        moe_checkpoint_save(scratch_path("fail/afile/ckpt"), CONFIG, &b.t, b.params, &b.opt, NULL),
        MOE_ERR_IO);
    assert_true(has("afile"));

    /* the disk "fills up" part-way (file size limit: EFBIG) */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1024; /* the model file is about 1.4 kB */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    moe_status s = moe_checkpoint_save(dir, CONFIG, &b.t, b.params, &b.opt, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(s, MOE_ERR_IO);
    assert_true(has("File too large"));
    assert_true(has("model.safetensors"));
    assert_true(has("previous one, if any, is kept"));
    char names[256];
    list_dir(scratch_path("fail"), names, sizeof names);
    assert_string_equal(names, "afile latest"); /* temp folder removed */
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, NULL), MOE_OK);
    assert_same(&a, &c); /* still the first checkpoint */
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

static void corrupt_byte(const char *path, long at, char value) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, SEEK_SET);
    fputc(value, f);
    fclose(f);
}

static void test_damaged_checkpoint_is_refused(void **state) {
    (void)state;
    model a, c;
    model_init(&a, 1.0);
    model_init(&c, 3.0);
    model keep;
    model_init(&keep, 3.0);
    moe_train_state st, back;
    train_state(&st, 5);
    memset(&back, 0x5a, sizeof back);
    moe_train_state back0 = back;
    const char *dir = scratch_path("damaged/latest");
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, &st), MOE_OK);

    /* one byte of the optimizer header: params must stay untouched too */
    corrupt_byte(scratch_path("damaged/latest/optimizer.safetensors"), 8, '[');
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, &back), MOE_ERR_FORMAT);
    assert_true(has("optimizer.safetensors"));
    assert_true(has("not valid JSON"));
    assert_same(&keep, &c);
    assert_memory_equal(&back, &back0, sizeof back);

    /* one byte of the model header */
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, &st), MOE_OK);
    corrupt_byte(scratch_path("damaged/latest/model.safetensors"), 8, 'x');
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, &back), MOE_ERR_FORMAT);
    assert_true(has("damaged/latest/model.safetensors: header is not valid JSON"));
    assert_same(&keep, &c);

    /* re-saving over the damaged one repairs it */
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, &st), MOE_OK);
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, &back), MOE_OK);
    assert_same(&a, &c);
    model_free(&a);
    model_free(&c);
    model_free(&keep);
}

static void test_mismatches_are_explained(void **state) {
    (void)state;
    model a, c;
    model_init(&a, 1.0);
    model_init(&c, 0.0);
    const char *dir = scratch_path("mismatch/latest");
    assert_int_equal(moe_checkpoint_save(dir, CONFIG, &a.t, a.params, &a.opt, NULL), MOE_OK);

    c.opt.cfg.kind = MOE_OPT_SGD;
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, NULL), MOE_ERR_INVALID);
    assert_true(has("saved with optimizer adamw but resuming with sgd"));
    c.opt.cfg.kind = MOE_OPT_ADAMW;
    c.opt.n_slots = 1;
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, &c.opt, NULL), MOE_ERR_INVALID);
    assert_true(has("2 slots"));
    c.opt.n_slots = 2;

    moe_train_state st;
    assert_int_equal(moe_checkpoint_load(dir, &c.t, c.params, NULL, &st), MOE_ERR_FORMAT);
    assert_true(has("no training state"));

    /* a model with another shape */
    moe_param_table t2;
    moe_params_init(&t2);
    const int64_t s0[] = {16, 4};
    moe_params_add(&t2, "model.embed_tokens.weight", 2, s0);
    assert_int_equal(moe_checkpoint_load(dir, &t2, c.params, NULL, NULL), MOE_ERR_FORMAT);
    assert_true(has("\"model.embed_tokens.weight\" has shape [16, 8] in the file but [16, 4]"));
    moe_params_free(&t2);

    char *cfg = (char *)1;
    assert_int_equal(moe_checkpoint_read_config(scratch_path("nowhere"), &cfg), MOE_ERR_IO);
    assert_null(cfg);
    assert_true(has("no config.json: is this a checkpoint folder"));
    assert_int_equal(moe_checkpoint_load(scratch_path("nowhere"), &c.t, c.params, NULL, NULL),
                     MOE_ERR_IO);
    assert_true(has("nowhere"));
    model_free(&a);
    model_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_atomic_replacement),
        cmocka_unit_test(test_failed_saves_keep_previous),
        cmocka_unit_test(test_damaged_checkpoint_is_refused),
        cmocka_unit_test(test_mismatches_are_explained),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
