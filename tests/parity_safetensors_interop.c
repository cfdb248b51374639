/* safetensors interop with PyTorch, both ways, without the safetensors
 * package: scripts/ref/safetensors_interop.py writes argv[1] (F32, F64, F16,
 * BF16 and a scalar) for us to read; we write a file that the same script
 * reads back with json + struct + torch.frombuffer (--check). */
#include "test_util.h"

#include "moe/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *ref_path;

/* |got - want| <= rel * |want| + abs for every element. */
static void expect_close(const moe_st_file *f, const char *name, const int64_t *shape, int ndim,
                         const double *want, int n, double rel, double abs) {
    moe_real got[16];
    assert_true(n <= 16);
    if (moe_st_read(f, name, shape, ndim, got) != MOE_OK) fail_msg("%s", moe_last_error());
    for (int i = 0; i < n; i++)
        if (fabs((double)got[i] - want[i]) > rel * fabs(want[i]) + abs)
            fail_msg("%s[%d] = %.9g, expected %.9g", name, i, (double)got[i], want[i]);
}

static void test_reads_torch_file(void **state) {
    (void)state;
    moe_st_file *f;
    if (moe_st_open(&f, ref_path) != MOE_OK) fail_msg("%s", moe_last_error());
    assert_int_equal(moe_st_count(f), 5);
    assert_string_equal(moe_st_name(f, 0), "model.layers.0.w");
    assert_string_equal(moe_st_meta(f, "source"), "torch");
    double w[12];
    for (int i = 0; i < 12; i++) w[i] = sin(i * 0.37) * 3;
    const int64_t s34[] = {3, 4}, s5[] = {5}, s222[] = {2, 2, 2}, s6[] = {6};
    expect_close(f, "model.layers.0.w", s34, 2, w, 12, 1e-7, 0); /* f32: exact */
    for (int i = 0; i < 5; i++) w[i] = i / 7.0 - 0.3;
    expect_close(f, "f64", s5, 1, w, 5, 1e-7, 1e-12); /* rounded to moe_real */
    for (int i = 0; i < 8; i++) w[i] = -4 + 8.0 * i / 7;
    expect_close(f, "f16", s222, 3, w, 8, 1.0 / 2048, 1e-7); /* half: 11 bits */
    for (int i = 0; i < 6; i++) w[i] = (i - 2.5) * 1.1;
    expect_close(f, "bf16", s6, 1, w, 6, 1.0 / 256, 0); /* bfloat16: 8 bits */
    w[0] = 0.125;
    expect_close(f, "scalar", NULL, 0, w, 1, 0, 0);
    moe_st_close(f);
}

static void test_torch_reads_our_file(void **state) {
    (void)state;
    moe_param_table t;
    moe_params_init(&t);
    const int64_t sa[] = {2, 3}, sb[] = {4};
    moe_params_add(&t, "a", 2, sa);
    moe_params_add(&t, "b.c", 1, sb);
    moe_real *block = calloc(t.total, sizeof *block);
    for (int i = 0; i < 6; i++) block[t.tensors[0].offset + i] = (moe_real)(0.5 * i - 1);
    for (int i = 0; i < 4; i++) block[t.tensors[1].offset + i] = (moe_real)(i * i / 8.0);
    char path[] = "/tmp/moe_interop_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    const char *meta[] = {"who", "libmoe", NULL};
    if (moe_st_save(path, &t, block, meta) != MOE_OK) fail_msg("%s", moe_last_error());
    const char *src = getenv("MOE_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/ref/safetensors_interop.py --check %s",
             src ? src : ".", path);
    int rc = system(cmd);
    unlink(path);
    free(block);
    moe_params_free(&t);
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REF.safetensors (from scripts/ref/safetensors_interop.py)\n",
                argv[0]);
        return 2;
    }
    ref_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_torch_file),
        cmocka_unit_test(test_torch_reads_our_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
