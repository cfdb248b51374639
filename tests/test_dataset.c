/* Dense data sets (moe/dataset.h): idx files (written here, tiny, gzip'd or
 * plain) and every header check; the stratified, seeded, disjoint split;
 * normalisation from the training split alone; batch gathering; image
 * augmentation; and the real Fashion-MNIST from Debian's package. The CSV
 * tables are tests/test_dataset_csv.c. */
#include "test_util.h"

#include "moe/moe.h"
#include "scratch_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static moe_data_config fm_config(const char *dir) {
    moe_run_config rc;
    moe_config_defaults(&rc);
    moe_data_config c = rc.data;
    snprintf(c.source, sizeof c.source, "fashion-mnist");
    snprintf(c.path, sizeof c.path, "%s", dir ? dir : "");
    c.val_fraction = 0;
    c.test_fraction = 0;
    c.normalize = 0;
    return c;
}

/* ---- writing idx files ------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An idx file: magic, nd dims, then n data bytes (whatever the dims say). */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int nd,
                      const uint8_t *data, size_t n) {
    uint8_t head[16];
    put32(head, magic);
    for (int i = 0; i < nd; i++) put32(head + 4 + 4 * i, dims[i]);
    size_t hl = 4 + 4 * (size_t)nd;
    if (gz) {
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, head, (unsigned)hl), (int)hl);
        if (n) assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(head, 1, hl, fp), hl);
        if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
        fclose(fp);
    }
}

/* Pixel p of image i: pixels 0 and 1 spell i (so a test can tell which
 * example landed where), the others an arbitrary pattern. */
static uint8_t pix(int i, int p) {
    if (p == 0) return (uint8_t)(i % 256);
    if (p == 1) return (uint8_t)(i / 256);
    return (uint8_t)((i * 31 + p * 7 + 3) % 256);
}

static int example_id(const moe_dataset *d, int j) {
    const float *x = d->x + (size_t)j * d->dim;
    return (int)lroundf(x[0] * 255) + 256 * (int)lroundf(x[1] * 255);
}

typedef struct fm_part {
    int n, H, W, gz;
    const uint8_t *labels;
    int id_offset; /* image i is pix(id_offset + i, .) */
} fm_part;

static void write_part(const char *dir, const char *name, const fm_part *p) {
    char path[256];
    size_t np = (size_t)p->H * p->W;
    uint8_t *img = malloc((size_t)p->n * np);
    for (int i = 0; i < p->n; i++)
        for (size_t q = 0; q < np; q++) img[i * np + q] = pix(p->id_offset + i, (int)q);
    uint32_t idims[3] = {(uint32_t)p->n, (uint32_t)p->H, (uint32_t)p->W}, ldims[1] = {p->n};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, name, p->gz ? ".gz" : "");
    write_idx(path, p->gz, 0x803, idims, 3, img, (size_t)p->n * np);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, name, p->gz ? ".gz" : "");
    write_idx(path, p->gz, 0x801, ldims, 1, p->labels, (size_t)p->n);
    free(img);
}

/* A folder with a tiny Fashion-MNIST: train gzip'd, t10k plain. */
static const char *make_fm(const char *name, int n_train, const uint8_t *train_labels, int n_test,
                           const uint8_t *test_labels, int H, int W) {
    const char *dir = scratch_path(name);
    mkdir(dir, 0755);
    fm_part train = {n_train, H, W, 1, train_labels, 0};
    fm_part test = {n_test, H, W, 0, test_labels, 10000};
    write_part(dir, "train", &train);
    write_part(dir, "t10k", &test);
    return dir;
}

static void expect_fail(const moe_data_config *c, moe_status want, const char *a, const char *b) {
    moe_dataset_splits s;
    moe_status st = moe_dataset_load(&s, c, 1);
    const char *msg = moe_last_error();
    if (st != want || !strstr(msg, a) || (b && !strstr(msg, b))) {
        print_error("wanted %s with \"%s\" and \"%s\", got %s: %s\n", moe_status_name(want), a,
                    b ? b : "", moe_status_name(st), msg);
        fail();
    }
    assert_null(s.train.x); /* nothing left to free */
    assert_null(s.class_names);
}

/* ---- idx loading ------------------------------------------------------ */

static void test_idx_load(void **state) {
    (void)state;
    uint8_t tl[40], el[12];
    for (int i = 0; i < 40; i++) tl[i] = (uint8_t)(i % 10);
    for (int i = 0; i < 12; i++) el[i] = (uint8_t)(i * 3 % 10);
    const char *dir = make_fm("fm_small", 40, tl, 12, el, 3, 4);
    moe_data_config c = fm_config(dir);
    c.val_fraction = 0.25f;
    c.test_fraction = 0.5f; /* not used: t10k is the test split */
    moe_dataset_splits s;
    assert_int_equal(moe_dataset_load(&s, &c, 7), MOE_OK);
    assert_string_equal(s.source, "fashion-mnist");
    assert_int_equal(s.train.n, 30); /* one of each class's four to val */
    assert_int_equal(s.val.n, 10);
    assert_int_equal(s.test.n, 12);
    const moe_dataset *sets[3] = {&s.train, &s.val, &s.test};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sets[k]->dim, 12);
        assert_int_equal(sets[k]->channels, 1);
        assert_int_equal(sets[k]->height, 3);
        assert_int_equal(sets[k]->width, 4);
        assert_int_equal(sets[k]->n_classes, 10);
        assert_null(sets[k]->soft);
        assert_null(sets[k]->weights);
    }
    assert_string_equal(s.class_names[0], "T-shirt/top");
    assert_string_equal(s.class_names[6], "Shirt");
    assert_string_equal(s.class_names[9], "Ankle boot");
    assert_null(s.feature_names);
    assert_null(s.mean);
    assert_null(s.std);
    assert_close(moe_dataset_black_value(&s), 0, 0);
    for (int i = 0; i < 12; i++) { /* the test file, in order, pixels / 255 */
        assert_int_equal(s.test.labels[i], el[i]);
        for (int p = 0; p < 12; p++)
            assert_close(s.test.x[i * 12 + p], pix(10000 + i, p) / 255.0, 1e-7);
    }
    for (int i = 0; i < s.train.n; i++) { /* each example kept whole, with its label */
        int id = example_id(&s.train, i);
        assert_int_equal(s.train.labels[i], tl[id]);
        for (int p = 2; p < 12; p++) assert_close(s.train.x[i * 12 + p], pix(id, p) / 255.0, 1e-7);
    }
    moe_dataset_splits_free(&s);
    assert_null(s.train.x);
}

static void test_idx_header_checks(void **state) {
    (void)state;
    uint8_t labels[40], img[40 * 12];
    for (int i = 0; i < 40; i++) labels[i] = (uint8_t)(i % 10);
    for (int i = 0; i < 40 * 12; i++) img[i] = (uint8_t)i;
    const char *dir = make_fm("fm_bad", 40, labels, 10, labels, 3, 4);
    moe_data_config c = fm_config(dir);
    char ipath[256], lpath[256];
    snprintf(ipath, sizeof ipath, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lpath, sizeof lpath, "%s/train-labels-idx1-ubyte.gz", dir);
    uint32_t idims[3] = {40, 3, 4}, ldims[1] = {40};
    const char *fix = "reinstall dataset-fashion-mnist";

    write_idx(ipath, 1, 0x804, idims, 3, img, sizeof img); /* bad magic */
    expect_fail(&c, MOE_ERR_FORMAT, "train-images-idx3-ubyte.gz: magic number 0x00000804", fix);
    write_idx(ipath, 1, 0x0903, idims, 3, img, sizeof img); /* not unsigned bytes */
    expect_fail(&c, MOE_ERR_FORMAT, "magic number 0x00000903", fix);
    write_idx(ipath, 1, 0x803, idims, 3, img, sizeof img - 5); /* truncated data */
    expect_fail(&c, MOE_ERR_FORMAT, "train-images-idx3-ubyte.gz: truncated: 475 of the 480", fix);
    write_idx(ipath, 1, 0x803, idims, 3, img, sizeof img);
    struct stat st;
    assert_int_equal(stat(ipath, &st), 0); /* a cut-off download: the gzip stream ends early */
    assert_int_equal(truncate(ipath, st.st_size / 2), 0);
    expect_fail(&c, MOE_ERR_FORMAT, "train-images-idx3-ubyte.gz: truncated", fix);
    write_idx(ipath, 1, 0x803, idims, 2, NULL, 0); /* the header itself cut short */
    expect_fail(&c, MOE_ERR_FORMAT, "shorter than an idx header", fix);
    write_idx(ipath, 1, 0x803, idims, 3, img, sizeof img);
    write_idx(lpath, 1, 0x801, ldims, 1, labels, 40);
    uint8_t more[41];
    memcpy(more, labels, 40);
    more[40] = 0;
    write_idx(lpath, 1, 0x801, ldims, 1, more, 41); /* a byte more than the header says */
    expect_fail(&c, MOE_ERR_FORMAT, "train-labels-idx1-ubyte.gz: longer than its header", fix);
    uint32_t fewer[1] = {39};
    write_idx(lpath, 1, 0x801, fewer, 1, labels, 39); /* counts disagree */
    expect_fail(&c, MOE_ERR_FORMAT, "holds 40 images but", "holds 39 labels");
    uint8_t bad[40];
    memcpy(bad, labels, 40);
    bad[17] = 10;
    write_idx(lpath, 1, 0x801, ldims, 1, bad, 40); /* a label past the 10 classes */
    expect_fail(&c, MOE_ERR_FORMAT, "label 10 of item 17", fix);
    uint32_t none[1] = {0};
    write_idx(lpath, 1, 0x801, none, 1, NULL, 0);
    expect_fail(&c, MOE_ERR_FORMAT, "dimension 0 is 0", fix);
    write_idx(lpath, 1, 0x801, ldims, 1, labels, 40);

    moe_dataset_splits s; /* repaired: it loads again */
    assert_int_equal(moe_dataset_load(&s, &c, 1), MOE_OK);
    moe_dataset_splits_free(&s);

    uint32_t wide[3] = {10, 3, 5}; /* test images of another size */
    char tpath[256];
    snprintf(tpath, sizeof tpath, "%s/t10k-images-idx3-ubyte", dir);
    write_idx(tpath, 0, 0x803, wide, 3, img, 150);
    expect_fail(&c, MOE_ERR_FORMAT, "training images are 3x4 but test images 3x5", NULL);
    unlink(tpath); /* and then missing */
    expect_fail(&c, MOE_ERR_IO, "t10k-images-idx3-ubyte", "apt-get install dataset-fashion-mnist");
    moe_data_config nowhere = fm_config(scratch_path("no_such_folder"));
    expect_fail(&nowhere, MOE_ERR_IO, "no_such_folder/train-images-idx3-ubyte.gz", "data.path");
}

/* ---- split ------------------------------------------------------------ */

enum { N_SKEW = 325 };

/* class c gets 10 + 5c examples, interleaved over the file */
static void skewed_labels(uint8_t *labels) {
    uint8_t seq[N_SKEW] = {0};
    int n = 0;
    for (int c = 0; c < 10; c++)
        for (int k = 0; k < 10 + 5 * c; k++) seq[n++] = (uint8_t)c;
    assert_int_equal(n, N_SKEW);
    for (int i = 0; i < N_SKEW; i++) labels[(i * 7919) % N_SKEW] = seq[i];
}

static void val_ids(const moe_dataset_splits *s, int *ids) {
    for (int i = 0; i < s->val.n; i++) ids[i] = example_id(&s->val, i);
}

static void test_split_stratified(void **state) {
    (void)state;
    uint8_t labels[N_SKEW], el[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    skewed_labels(labels);
    const char *dir = make_fm("fm_skew", N_SKEW, labels, 10, el, 2, 2);
    moe_data_config c = fm_config(dir);
    c.val_fraction = 0.2f;
    moe_dataset_splits a, b, other;
    assert_int_equal(moe_dataset_load(&a, &c, 42), MOE_OK);
    assert_int_equal(moe_dataset_load(&b, &c, 42), MOE_OK);
    assert_int_equal(moe_dataset_load(&other, &c, 43), MOE_OK);
    int seen[N_SKEW] = {0}, val_per[10] = {0}, train_per[10] = {0};
    const moe_dataset *parts[2] = {&a.train, &a.val};
    for (int k = 0; k < 2; k++)
        for (int i = 0, last = -1; i < parts[k]->n; i++) {
            int id = example_id(parts[k], i);
            assert_true(id > last); /* file order kept */
            last = id;
            assert_int_equal(parts[k]->labels[i], labels[id]);
            seen[id]++;
            (k ? val_per : train_per)[labels[id]]++;
        }
    for (int i = 0; i < N_SKEW; i++) assert_int_equal(seen[i], 1); /* disjoint, complete */
    for (int cl = 0; cl < 10; cl++) { /* 20% of 10 + 5c is exactly 2 + c */
        assert_int_equal(val_per[cl], 2 + cl);
        assert_int_equal(train_per[cl], 8 + 4 * cl);
    }
    int va[N_SKEW], vb[N_SKEW], vo[N_SKEW];
    assert_int_equal(a.val.n, b.val.n);
    val_ids(&a, va);
    val_ids(&b, vb);
    val_ids(&other, vo);
    assert_memory_equal(va, vb, sizeof(int) * a.val.n); /* same seed, same split */
    assert_int_equal(other.val.n, a.val.n);
    assert_true(memcmp(va, vo, sizeof(int) * a.val.n) != 0); /* another seed, another */
    moe_dataset_splits_free(&a);
    moe_dataset_splits_free(&b);
    moe_dataset_splits_free(&other);

    c.val_fraction = 0; /* everything trains */
    assert_int_equal(moe_dataset_load(&a, &c, 1), MOE_OK);
    assert_int_equal(a.train.n, N_SKEW);
    assert_int_equal(a.val.n, 0);
    moe_dataset_splits_free(&a);
    c.val_fraction = 1;
    expect_fail(&c, MOE_ERR_INVALID, "data.val_fraction 1", NULL);
}

/* ---- normalisation ---------------------------------------------------- */

static void test_normalize_from_train(void **state) {
    (void)state;
    uint8_t labels[N_SKEW], el[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    skewed_labels(labels);
    const char *dir = make_fm("fm_norm", N_SKEW, labels, 10, el, 3, 3);
    moe_data_config c = fm_config(dir);
    c.val_fraction = 0.3f;
    moe_dataset_splits raw, s;
    assert_int_equal(moe_dataset_load(&raw, &c, 5), MOE_OK);
    c.normalize = 1;
    assert_int_equal(moe_dataset_load(&s, &c, 5), MOE_OK);
    assert_non_null(s.mean);
    assert_non_null(s.std);
    double sum = 0, sq = 0, all = 0;
    size_t m = (size_t)raw.train.n * 9;
    for (size_t j = 0; j < m; j++) sum += raw.train.x[j];
    double mean = sum / (double)m;
    for (size_t j = 0; j < m; j++) sq += (raw.train.x[j] - mean) * (raw.train.x[j] - mean);
    double sd = sqrt(sq / (double)m);
    for (int j = 0; j < raw.val.n * 9; j++) all += raw.val.x[j];
    all = (all + sum) / (double)((size_t)(raw.train.n + raw.val.n) * 9);
    assert_close(s.mean[0], mean, 1e-6);
    assert_close(s.std[0], sd, 1e-6);
    assert_true(fabs(all - mean) > 1e-3); /* would have shown had val leaked in */
    assert_close(moe_dataset_black_value(&s), -mean / sd, 1e-5);
    const moe_dataset *r[3] = {&raw.train, &raw.val, &raw.test},
                      *n[3] = {&s.train, &s.val, &s.test};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(r[k]->n, n[k]->n);
        for (int j = 0; j < r[k]->n * 9; j++)
            assert_close(n[k]->x[j], (r[k]->x[j] - mean) / sd, 1e-5);
    }
    moe_dataset_splits_free(&raw);
    moe_dataset_splits_free(&s);
}

/* ---- gather ----------------------------------------------------------- */

static void test_gather(void **state) {
    (void)state;
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int32_t labels[4] = {3, 1, 0, 2};
    float soft[16] = {0}, w[4] = {0.5f, 1, 2, 4};
    for (int i = 0; i < 4; i++) soft[i * 4 + labels[i]] = 1;
    moe_dataset d = {.n = 4, .dim = 3, .n_classes = 4, .x = x, .labels = labels};
    int idx[3] = {2, 0, 2};
    float bx[9], bs[12], bw[3];
    int32_t bl[3];
    moe_dataset_gather(&d, idx, 3, bx, bl, bs, bw);
    const float want_x[9] = {6, 7, 8, 0, 1, 2, 6, 7, 8};
    assert_memory_equal(bx, want_x, sizeof want_x);
    assert_int_equal(bl[0], 0);
    assert_int_equal(bl[1], 3);
    for (int b = 0; b < 3; b++) assert_close(bw[b], 1, 0); /* no weights: 1 */
    d.soft = soft;
    d.weights = w;
    moe_dataset_gather(&d, idx, 3, NULL, NULL, bs, bw);
    assert_close(bw[0], 2, 0);
    assert_close(bw[1], 0.5, 0);
    assert_memory_equal(bs, soft + 8, 4 * sizeof(float));
    assert_memory_equal(bs + 4, soft, 4 * sizeof(float));
}

/* ---- augmentation ----------------------------------------------------- */

enum { AB = 64, AC = 2, AH = 5, AW = 6 };

static void fill_images(float *x) {
    for (int i = 0; i < AB * AC * AH * AW; i++) x[i] = 1.0f + (float)i; /* all distinct, > 0 */
}

static float at(const float *img, int c, int y, int x) {
    return img[(c * AH + y) * AW + x];
}

static void test_augment_identity_and_flip(void **state) {
    (void)state;
    static float x[AB * AC * AH * AW], in[AB * AC * AH * AW];
    fill_images(in);
    memcpy(x, in, sizeof x);
    moe_rng rng, before;
    moe_rng_seed(&rng, 3);
    before = rng;
    moe_image_augment(x, AB, AC, AH, AW, 0, 0, -9, &rng);
    assert_memory_equal(x, in, sizeof x); /* pad 0, no flip: untouched */
    assert_memory_equal(&rng, &before, sizeof rng);
    moe_image_augment(x, AB, AC, AH, AW, 0, 1, -9, &rng);
    int flipped = 0;
    for (int b = 0; b < AB; b++) {
        const float *o = x + b * AC * AH * AW, *s = in + b * AC * AH * AW;
        int same = memcmp(o, s, sizeof(float) * AC * AH * AW) == 0, mirror = 1;
        for (int c = 0; c < AC; c++)
            for (int y = 0; y < AH; y++)
                for (int q = 0; q < AW; q++) mirror &= at(o, c, y, q) == at(s, c, y, AW - 1 - q);
        assert_true(same != mirror); /* exactly one of the two, all channels alike */
        flipped += mirror;
    }
    assert_in_range(flipped, 16, 48); /* about half of 64 */
}

/* the shift (dy, dx) that maps s onto o, with fill uncovered; -99 if none */
static int find_shift(const float *o, const float *s, int pad, float fill, int *sdy, int *sdx,
                      int mirrored) {
    for (int dy = -pad; dy <= pad; dy++)
        for (int dx = -pad; dx <= pad; dx++) {
            int ok = 1;
            for (int c = 0; c < AC && ok; c++)
                for (int y = 0; y < AH && ok; y++)
                    for (int q = 0; q < AW && ok; q++) {
                        int qq = mirrored ? AW - 1 - q : q; /* the flip comes after the crop */
                        int sy = y + dy, sx = qq + dx;
                        float want =
                            sy >= 0 && sy < AH && sx >= 0 && sx < AW ? at(s, c, sy, sx) : fill;
                        ok = at(o, c, y, q) == want;
                    }
            if (ok) {
                *sdy = dy;
                *sdx = dx;
                return 0;
            }
        }
    return -99;
}

static void test_augment_crop(void **state) {
    (void)state;
    static float x[AB * AC * AH * AW], in[AB * AC * AH * AW], again[AB * AC * AH * AW];
    const int pad = 2;
    const float fill = -0.75f;
    for (int flip = 0; flip <= 1; flip++) {
        fill_images(in);
        memcpy(x, in, sizeof x);
        memcpy(again, in, sizeof x);
        moe_rng rng, rng2;
        moe_rng_seed(&rng, 11);
        moe_rng_seed(&rng2, 11);
        moe_image_augment(x, AB, AC, AH, AW, pad, flip, fill, &rng);
        moe_image_augment(again, AB, AC, AH, AW, pad, flip, fill, &rng2);
        assert_memory_equal(x, again, sizeof x); /* same generator state, same batch */
        int shifts[5][5] = {{0}}, moved = 0, mirrored_n = 0;
        for (int b = 0; b < AB; b++) {
            const float *o = x + b * AC * AH * AW, *s = in + b * AC * AH * AW;
            int dy = 0, dx = 0, found = -99;
            for (int m = 0; m <= flip && found; m++) {
                found = find_shift(o, s, pad, fill, &dy, &dx, m);
                if (!found) mirrored_n += m;
            }
            assert_int_equal(found, 0);
            shifts[dy + pad][dx + pad]++;
            moved += dy || dx;
        }
        int distinct = 0;
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) distinct += shifts[i][j] > 0;
        assert_true(distinct >= 12); /* 64 draws over 25 shifts */
        assert_true(moved > AB / 2);
        if (flip) assert_in_range(mirrored_n, 12, 52);
    }
}

/* ---- the real Fashion-MNIST (Debian's dataset-fashion-mnist) ------------ */

static void test_fashion_mnist(void **state) {
    (void)state;
    moe_data_config c = fm_config(NULL); /* the default folder */
    c.val_fraction = 0.1f;
    c.normalize = 1;
    moe_dataset_splits s;
    moe_status st = moe_dataset_load(&s, &c, 1);
    if (st != MOE_OK) print_error("%s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    assert_int_equal(s.train.n + s.val.n, 60000);
    assert_int_equal(s.val.n, 6000); /* 600 of each class's 6000 */
    assert_int_equal(s.test.n, 10000);
    assert_int_equal(s.train.dim, 784);
    assert_int_equal(s.train.height, 28);
    assert_int_equal(s.train.width, 28);
    assert_int_equal(s.train.n_classes, 10);
    assert_string_equal(s.class_names[9], "Ankle boot");
    int per[10] = {0}, val_per[10] = {0}, test_per[10] = {0};
    for (int i = 0; i < s.train.n; i++) per[s.train.labels[i]]++;
    for (int i = 0; i < s.val.n; i++) val_per[s.val.labels[i]]++;
    for (int i = 0; i < s.test.n; i++) test_per[s.test.labels[i]]++;
    for (int k = 0; k < 10; k++) {
        assert_int_equal(per[k] + val_per[k], 6000);
        assert_int_equal(val_per[k], 600);
        assert_int_equal(test_per[k], 1000);
    }
    /* the published statistics of the training pixels: mean 0.2860, std 0.3530 */
    assert_close(s.mean[0], 0.2860, 0.003);
    assert_close(s.std[0], 0.3530, 0.003);
    double sum = 0, sq = 0;
    size_t m = (size_t)s.train.n * 784;
    for (size_t j = 0; j < m; j++) {
        sum += s.train.x[j];
        sq += (double)s.train.x[j] * s.train.x[j];
    }
    assert_close(sum / (double)m, 0, 1e-4); /* standardised */
    assert_close(sq / (double)m, 1, 1e-4);
    float black = moe_dataset_black_value(&s);
    assert_close(black, -s.mean[0] / s.std[0], 0);
    float lo = s.test.x[0];
    for (int j = 0; j < 784 * 100; j++) lo = fminf(lo, s.test.x[j]);
    assert_close(lo, black, 1e-6); /* a black pixel */
    moe_dataset_splits_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_load),         cmocka_unit_test(test_idx_header_checks),
        cmocka_unit_test(test_split_stratified), cmocka_unit_test(test_normalize_from_train),
        cmocka_unit_test(test_gather),           cmocka_unit_test(test_augment_identity_and_flip),
        cmocka_unit_test(test_augment_crop),     cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
