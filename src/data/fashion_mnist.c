/* Fashion-MNIST (Zalando, 2017): 28x28 grey images of 10 kinds of clothing,
 * 60,000 for training and 10,000 for testing, as Debian's
 * dataset-fashion-mnist installs them: four idx files, gzip'd. Pixels become
 * floats in [0, 1] (/255); normalisation comes later, from the training
 * split alone. */
#include "dataset_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FM_CLASSES 10

static const char *const fm_names[FM_CLASSES] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};

static const char *const fm_fix =
    "reinstall dataset-fashion-mnist (apt-get install --reinstall dataset-fashion-mnist) or point "
    "data.path at a folder with intact {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] files";

/* "<dir>/<stem>.gz" when it exists, else "<dir>/<stem>" (uncompressed). */
static moe_status find_file(const char *dir, const char *stem, char *path, size_t size) {
    int n = snprintf(path, size, "%s/%s.gz", dir, stem);
    if (n < 0 || (size_t)n >= size)
        return moe_error(MOE_ERR_INVALID, "data.path %s: too long", dir);
    if (access(path, R_OK) == 0) return MOE_OK;
    snprintf(path, size, "%s/%s", dir, stem);
    if (access(path, R_OK) == 0) return MOE_OK;
    return moe_error(MOE_ERR_IO,
                     "Fashion-MNIST: neither %s/%s.gz nor %s is readable; install "
                     "dataset-fashion-mnist (apt-get install dataset-fashion-mnist, files in "
                     "%s) or set data.path to a folder holding the idx files",
                     dir, stem, path, MOE_FASHION_MNIST_DIR);
}

/* One half (train or t10k): images and labels checked against each other. */
static moe_status load_part(moe_dataset *d, const char *dir, const char *part) {
    char ipath[1024], lpath[1024], stem[64];
    snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", part);
    moe_status st = find_file(dir, stem, ipath, sizeof ipath);
    if (st != MOE_OK) return st;
    snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", part);
    if ((st = find_file(dir, stem, lpath, sizeof lpath)) != MOE_OK) return st;
    idx_array im, lb;
    if ((st = idx_read(ipath, 3, fm_fix, &im)) != MOE_OK) return st;
    if ((st = idx_read(lpath, 1, fm_fix, &lb)) != MOE_OK) {
        free(im.data);
        return st;
    }
    if (im.dims[0] != lb.dims[0]) {
        st = moe_error(MOE_ERR_FORMAT, "%s holds %u images but %s holds %u labels; %s", ipath,
                       im.dims[0], lpath, lb.dims[0], fm_fix);
        goto done;
    }
    int n = (int)im.dims[0], H = (int)im.dims[1], W = (int)im.dims[2];
    for (int i = 0; i < n; i++)
        if (lb.data[i] >= FM_CLASSES) {
            st = moe_error(MOE_ERR_FORMAT, "%s: label %d of item %d is not a class (0 to %d); %s",
                           lpath, lb.data[i], i, FM_CLASSES - 1, fm_fix);
            goto done;
        }
    if ((st = dataset_alloc(d, n, H * W, FM_CLASSES, 0, 0)) != MOE_OK) goto done;
    d->channels = 1;
    d->height = H;
    d->width = W;
    size_t total = (size_t)n * (size_t)(H * W);
    for (size_t j = 0; j < total; j++) d->x[j] = (float)im.data[j] / 255.0f;
    for (int i = 0; i < n; i++) d->labels[i] = lb.data[i];
done:
    free(im.data);
    free(lb.data);
    return st;
}

moe_status fashion_mnist_load(dataset_full *f, const char *dir) {
    memset(f, 0, sizeof *f);
    if (!dir || !*dir) dir = MOE_FASHION_MNIST_DIR;
    moe_status st = load_part(&f->all, dir, "train");
    if (st == MOE_OK) st = load_part(&f->test, dir, "t10k");
    if (st == MOE_OK && (f->test.height != f->all.height || f->test.width != f->all.width))
        st = moe_error(MOE_ERR_FORMAT,
                       "Fashion-MNIST in %s: training images are %dx%d but test images %dx%d; "
                       "%s",
                       dir, f->all.height, f->all.width, f->test.height, f->test.width, fm_fix);
    if (st == MOE_OK) {
        f->class_names = calloc(FM_CLASSES, sizeof *f->class_names);
        if (!f->class_names) st = moe_error(MOE_ERR_NOMEM, "Fashion-MNIST: out of memory");
        for (int c = 0; st == MOE_OK && c < FM_CLASSES; c++)
            if (!(f->class_names[c] = strdup(fm_names[c])))
                st = moe_error(MOE_ERR_NOMEM, "Fashion-MNIST: out of memory");
    }
    if (st != MOE_OK) dataset_full_free(f);
    return st;
}
