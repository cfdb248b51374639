/* Training-time image augmentation, the standard pair for small images:
 * a random crop of the image padded by `pad` pixels on each side (so the
 * content shifts by up to pad pixels either way, uncovering `fill`), and a
 * horizontal flip half the time. Done in place without scratch memory: the
 * shift walks the rows in the order that never reads a row already written
 * (memmove handles the overlap within a row). */
#include "moe/dataset.h"

#include <string.h>

/* out[y][x] = in[y + dy][x + dx], fill where that falls outside. */
static void shift_plane(float *p, int H, int W, int dy, int dx, float fill) {
    int y0 = dy > 0 ? 0 : H - 1, step = dy > 0 ? 1 : -1;
    int keep = W - (dx > 0 ? dx : -dx); /* pixels of a row that stay inside */
    for (int k = 0, y = y0; k < H; k++, y += step) {
        float *row = p + (size_t)y * W;
        int src = y + dy;
        if (src < 0 || src >= H || keep <= 0) {
            for (int x = 0; x < W; x++) row[x] = fill;
            continue;
        }
        const float *from = p + (size_t)src * W;
        if (dx >= 0) {
            memmove(row, from + dx, (size_t)keep * sizeof *row);
            for (int x = keep; x < W; x++) row[x] = fill;
        } else {
            memmove(row - dx, from, (size_t)keep * sizeof *row);
            for (int x = 0; x < -dx; x++) row[x] = fill;
        }
    }
}

static void flip_plane(float *p, int H, int W) {
    for (int y = 0; y < H; y++) {
        float *row = p + (size_t)y * W;
        for (int a = 0, b = W - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

void moe_image_augment(float *x, int B, int C, int H, int W, int pad, int flip, float fill,
                       moe_rng *rng) {
    if (pad < 0) pad = 0;
    size_t plane = (size_t)H * W, image = plane * C;
    for (int b = 0; b < B; b++) {
        float *img = x + (size_t)b * image;
        int dy = 0, dx = 0, mirror = 0;
        if (pad > 0) { /* the crop's corner in the padded image, as a shift */
            dy = (int)moe_rng_below(rng, 2u * pad + 1) - pad;
            dx = (int)moe_rng_below(rng, 2u * pad + 1) - pad;
        }
        if (flip) mirror = (int)moe_rng_below(rng, 2);
        for (int c = 0; c < C; c++) {
            float *p = img + (size_t)c * plane;
            if (dy || dx) shift_plane(p, H, W, dy, dx, fill);
            if (mirror) flip_plane(p, H, W);
        }
    }
}
