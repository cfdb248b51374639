/* safetensors: round trip, byte layout, conversions, and the rejection of
 * every kind of damaged file with a message that says what is wrong. */
#include "test_util.h"

#include "scratch_dir.h"

#include "moe/safetensors.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* A table with several ranks and its block filled with distinct values. */
static moe_real *make_table(moe_param_table *t) {
    static const int64_t s0[] = {3}, s1[] = {2, 5}, s2[] = {2, 3, 4}, s3[] = {1, 1, 1, 7};
    moe_params_init(t);
    assert_int_equal(moe_params_add(t, "wte", 1, s0), 0);
    assert_int_equal(moe_params_add(t, "model.layers.0.attn.w", 2, s1), 1);
    assert_int_equal(moe_params_add(t, "experts.w1", 3, s2), 2);
    assert_int_equal(moe_params_add(t, "b", 4, s3), 3);
    moe_real *block = calloc(t->total, sizeof *block);
    for (size_t i = 0; i < t->total; i++) block[i] = (moe_real)(0.1 * (double)i - 3.7);
    return block;
}

static int has(const char *needle) {
    if (strstr(moe_last_error(), needle)) return 1;
    print_error("message \"%s\" lacks \"%s\"\n", moe_last_error(), needle);
    return 0;
}

/* Writes a file with the given header JSON (padded) and data bytes. */
static const char *write_raw(const char *name, const char *json, const void *data, size_t n) {
    const char *p = scratch_path(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    unsigned char hdr[8];
    for (int b = 0; b < 8; b++) hdr[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    fwrite(hdr, 1, 8, f);
    fwrite(json, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

static void expect_open_fails(const char *p, const char *what1, const char *what2) {
    moe_st_file *f = (moe_st_file *)1;
    assert_int_equal(moe_st_open(&f, p), MOE_ERR_FORMAT);
    assert_null(f);
    assert_true(has(p));
    assert_true(has(what1));
    if (what2) assert_true(has(what2));
}

static void test_round_trip(void **state) {
    (void)state;
    moe_param_table t;
    moe_real *block = make_table(&t);
    const char *meta[] = {"step", "12", NULL};
    const char *p = scratch_path("rt.safetensors");
    assert_int_equal(moe_st_save(p, &t, block, meta), MOE_OK);

    moe_real *back = calloc(t.total, sizeof *back);
    assert_int_equal(moe_st_load_table(p, &t, back), MOE_OK);
    for (int i = 0; i < t.count; i++) {
        const moe_tensor_info *ti = &t.tensors[i];
        assert_memory_equal(back + ti->offset, block + ti->offset, ti->numel * sizeof *back);
    }
    moe_st_file *f;
    assert_int_equal(moe_st_open(&f, p), MOE_OK);
    assert_int_equal(moe_st_count(f), 4);
    for (int i = 0; i < 4; i++) assert_string_equal(moe_st_name(f, i), t.tensors[i].name);
    assert_null(moe_st_name(f, 4));
    assert_string_equal(moe_st_meta(f, "step"), "12");
    assert_string_equal(moe_st_meta(f, "format"), "pt");
    assert_null(moe_st_meta(f, "nope"));
    int nd;
    int64_t sh[MOE_MAX_DIMS];
    assert_int_equal(moe_st_shape(f, "experts.w1", &nd, sh), MOE_OK);
    assert_int_equal(nd, 3);
    assert_int_equal(sh[2], 4);
    moe_st_close(f);
    free(back);
    free(block);
    moe_params_free(&t);
}

static void test_header_layout(void **state) {
    (void)state;
    moe_param_table t;
    moe_real *block = make_table(&t);
    const char *p = scratch_path("layout.safetensors");
    assert_int_equal(moe_st_save(p, &t, block, NULL), MOE_OK);
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    unsigned char buf[4096];
    size_t size = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--) n = n << 8 | buf[b]; /* little endian */
    assert_int_equal(n % 8, 0);
    size_t data_bytes = 0;
    for (int i = 0; i < t.count; i++) data_bytes += t.tensors[i].numel * sizeof(moe_real);
    assert_int_equal(size, 8 + n + data_bytes);
    assert_int_equal(buf[8], '{');
    size_t last = 8 + n - 1;
    while (buf[last] == ' ') last--; /* padding is spaces after the JSON */
    assert_int_equal(buf[last], '}');
    assert_true(8 + n - 1 - last < 8);
    char *json = strndup((const char *)buf + 8, n);
    assert_non_null(strstr(json, sizeof(moe_real) == 4 ? "\"F32\"" : "\"F64\""));
    assert_non_null(strstr(json, "\"wte\":{\"dtype\""));
    assert_non_null(strstr(json, "\"data_offsets\":[0,"));
    free(json);
    /* tensors back to back in table order, first at the start of the data */
    assert_memory_equal(buf + 8 + n, block + t.tensors[0].offset, 3 * sizeof(moe_real));
    size_t second = 8 + n + 3 * sizeof(moe_real);
    assert_memory_equal(buf + second, block + t.tensors[1].offset, 10 * sizeof(moe_real));
    free(block);
    moe_params_free(&t);
}

static void test_rejects_empty_and_short(void **state) {
    (void)state;
    const char *p = scratch_path("empty.safetensors");
    fclose(fopen(p, "wb"));
    expect_open_fails(p, "file is 0 bytes", "empty or truncated");
    moe_st_file *f;
    assert_int_equal(moe_st_open(&f, scratch_path("absent.safetensors")), MOE_ERR_IO);
    assert_true(has("No such file"));
}

static void test_rejects_header_past_end(void **state) {
    (void)state;
    const char *p = scratch_path("long.safetensors");
    FILE *fp = fopen(p, "wb");
    unsigned char hdr[8] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0}; /* 1000 */
    fwrite(hdr, 1, 8, fp);
    fputs("{\"a\":1}   ", fp);
    fclose(fp);
    expect_open_fails(p, "header length 1000 runs past the end of the file (18 bytes)", NULL);
}

static void test_rejects_malformed_json(void **state) {
    (void)state;
    const char *p = write_raw("json.safetensors", "{\"a\": {\"dtype\": ", NULL, 0);
    expect_open_fails(p, "not valid JSON", NULL);
    p = write_raw("arr.safetensors", "[1, 2]", NULL, 0);
    expect_open_fails(p, "not a JSON object", NULL);
    p = write_raw("tail.safetensors", "{}   x", NULL, 0);
    expect_open_fails(p, "unexpected bytes after the header JSON (byte 5)", NULL);
    p = write_raw("ok.safetensors", "{}", NULL, 0); /* no tensors is valid */
    moe_st_file *f;
    assert_int_equal(moe_st_open(&f, p), MOE_OK);
    assert_int_equal(moe_st_count(f), 0);
    moe_st_close(f);
    assert_int_equal(moe_st_open(&f, scratch_path("")), MOE_ERR_IO); /* a folder */
    assert_true(has("not a regular file"));
}

static void test_rejects_unknown_dtype(void **state) {
    (void)state;
    const char data[4] = {0};
    const char *p =
        write_raw("dtype.safetensors",
                  "{\"x\":{\"dtype\":\"F8\",\"shape\":[4],\"data_offsets\":[0,4]}}", data, 4);
    expect_open_fails(p, "tensor \"x\" has unknown dtype \"F8\"", "F32");
}

static void test_rejects_bad_shape_and_size(void **state) {
    (void)state;
    const char data[16] = {0};
    const char *p =
        write_raw("neg.safetensors",
                  "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 16);
    expect_open_fails(p, "tensor \"x\" dim 0 is not a non-negative integer", NULL);
    p = write_raw("size.safetensors",
                  "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 16);
    expect_open_fails(p, "tensor \"x\" spans 8 bytes", "need 12");
}

static void test_rejects_truncated(void **state) {
    (void)state;
    moe_param_table t;
    moe_real *block = make_table(&t);
    const char *p = scratch_path("trunc.safetensors");
    assert_int_equal(moe_st_save(p, &t, block, NULL), MOE_OK);
    FILE *fp = fopen(p, "rb");
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(p, size - 5), 0);
    /* the last tensor ("b", 7 values) now runs past the end */
    expect_open_fails(p, "tensor \"b\" data_offsets", "run past the end of the file");
    assert_true(has("the file is truncated"));
    free(block);
    moe_params_free(&t);
}

static void test_rejects_overlap(void **state) {
    (void)state;
    const char data[12] = {0};
    const char *p = write_raw("overlap.safetensors",
                              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                              data, 12);
    expect_open_fails(p, "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap", NULL);
    p = write_raw("dup.safetensors",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  data, 12);
    expect_open_fails(p, "tensor \"a\" appears twice", NULL);
}

static void test_shape_mismatch_on_read(void **state) {
    (void)state;
    moe_param_table t;
    moe_real *block = make_table(&t);
    const char *p = scratch_path("shape.safetensors");
    assert_int_equal(moe_st_save(p, &t, block, NULL), MOE_OK);
    moe_st_file *f;
    assert_int_equal(moe_st_open(&f, p), MOE_OK);
    moe_real dst[10];
    const int64_t wrong[] = {5, 2};
    assert_int_equal(moe_st_read(f, "model.layers.0.attn.w", wrong, 2, dst), MOE_ERR_FORMAT);
    assert_true(has("\"model.layers.0.attn.w\" has shape [2, 5] in the file but [5, 2]"));
    assert_int_equal(moe_st_read(f, "nope", wrong, 2, dst), MOE_ERR_FORMAT);
    assert_true(has("tensor \"nope\" is missing"));
    const int64_t right[] = {2, 5};
    assert_int_equal(moe_st_read(f, "model.layers.0.attn.w", right, 2, dst), MOE_OK);
    assert_memory_equal(dst, block + t.tensors[1].offset, sizeof dst);
    moe_st_close(f);
    free(block);
    moe_params_free(&t);
}

static void test_missing_and_extra_tensors(void **state) {
    (void)state;
    moe_param_table t;
    moe_real *block = make_table(&t);
    const char *p = scratch_path("table.safetensors");
    assert_int_equal(moe_st_save(p, &t, block, NULL), MOE_OK);

    /* a bigger model: one tensor missing from the file; block untouched */
    moe_param_table big;
    moe_real *bb = make_table(&big);
    const int64_t s[] = {4};
    assert_int_equal(moe_params_add(&big, "lm_head", 1, s), 4);
    moe_real *dst = calloc(big.total, sizeof *dst);
    for (size_t i = 0; i < big.total; i++) dst[i] = 42;
    assert_int_equal(moe_st_load_table(p, &big, dst), MOE_ERR_FORMAT);
    assert_true(has("tensor \"lm_head\" is missing"));
    for (size_t i = 0; i < big.total; i++) assert_true(dst[i] == 42);

    /* a smaller model: the file holds tensors it lacks */
    moe_param_table small;
    moe_params_init(&small);
    const int64_t s0[] = {3};
    moe_params_add(&small, "wte", 1, s0);
    assert_int_equal(moe_st_load_table(p, &small, dst), MOE_ERR_FORMAT);
    assert_true(has("3 tensors are not in the model, e.g. \"model.layers.0.attn.w\""));

    /* same names, another shape */
    moe_param_table other;
    moe_params_init(&other);
    const int64_t w[] = {4};
    moe_params_add(&other, "wte", 1, w);
    assert_int_equal(moe_st_load_table(p, &other, dst), MOE_ERR_FORMAT);
    assert_true(has("\"wte\" has shape [3] in the file but [4]"));
    free(dst);
    free(bb);
    free(block);
    moe_params_free(&t);
    moe_params_free(&big);
    moe_params_free(&small);
    moe_params_free(&other);
}

static void test_half_conversions(void **state) {
    (void)state;
    /* F16: 1, -2, 0.5, 65504, 2^-24 (subnormal), inf; BF16: 1, -3, 0.15625;
     * F64: 1/3 */
    const uint16_t h[] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00};
    const uint16_t bf[] = {0x3f80, 0xc040, 0x3e20};
    const double d = 1.0 / 3.0;
    unsigned char data[32];
    memcpy(data, h, 12);
    memcpy(data + 12, bf, 6);
    memcpy(data + 24, &d, 8); /* host is little endian (checked at build) */
    const char *p = write_raw("half.safetensors",
                              "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                              "\"bf\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[12,18]},"
                              "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[20,24]},"
                              "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[24,32]}}",
                              data, 32);
    moe_st_file *f;
    assert_int_equal(moe_st_open(&f, p), MOE_OK);
    moe_real out[6];
    const int64_t sh[] = {2, 3}, sb[] = {3};
    assert_int_equal(moe_st_read(f, "h", sh, 2, out), MOE_OK);
    const double want[] = {1, -2, 0.5, 65504, ldexp(1, -24)};
    for (int i = 0; i < 5; i++) assert_true(out[i] == (moe_real)want[i]);
    assert_true(isinf(out[5]) && out[5] > 0);
    assert_int_equal(moe_st_read(f, "bf", sb, 1, out), MOE_OK);
    assert_true(out[0] == 1 && out[1] == -3 && out[2] == (moe_real)0.15625);
    assert_int_equal(moe_st_read(f, "d", NULL, 0, out), MOE_OK);
    assert_true(out[0] == (moe_real)d);
    assert_int_equal(moe_st_read(f, "i", NULL, 1, out), MOE_ERR_FORMAT);
    assert_true(has("\"i\" is I32"));
    moe_st_close(f);
}

/* A write that fails part-way (file size limit: EFBIG, like a full disk)
 * keeps the old file and leaves no temporary behind. */
static void test_failed_write_keeps_old_file(void **state) {
    (void)state;
    moe_param_table t;
    moe_params_init(&t);
    const int64_t s[] = {256, 256};
    moe_params_add(&t, "big", 2, s);
    moe_real *block = calloc(t.total, sizeof *block);
    const char *p = scratch_path("keep.safetensors");
    char keep[128];
    snprintf(keep, sizeof keep, "%s", p);
    moe_param_table small;
    moe_real *sb = make_table(&small);
    assert_int_equal(moe_st_save(keep, &small, sb, NULL), MOE_OK);

    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    moe_status st = moe_st_save(keep, &t, block, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(st, MOE_ERR_IO);
    assert_true(has(keep));
    assert_true(has("File too large"));
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", keep, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    moe_real *back = calloc(small.total, sizeof *back);
    assert_int_equal(moe_st_load_table(keep, &small, back), MOE_OK);
    for (int i = 0; i < small.count; i++) {
        const moe_tensor_info *ti = &small.tensors[i];
        assert_memory_equal(back + ti->offset, sb + ti->offset, ti->numel * sizeof *back);
    }
    free(back);
    free(sb);
    free(block);
    moe_params_free(&t);
    moe_params_free(&small);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_rejects_empty_and_short),
        cmocka_unit_test(test_rejects_header_past_end),
        cmocka_unit_test(test_rejects_malformed_json),
        cmocka_unit_test(test_rejects_unknown_dtype),
        cmocka_unit_test(test_rejects_bad_shape_and_size),
        cmocka_unit_test(test_rejects_truncated),
        cmocka_unit_test(test_rejects_overlap),
        cmocka_unit_test(test_shape_mismatch_on_read),
        cmocka_unit_test(test_missing_and_extra_tensors),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_failed_write_keeps_old_file),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
