/* IDX files (the MNIST format): a 4-byte magic 0x00 0x00 <type> <ndims>,
 * ndims big-endian 32-bit sizes, then the items' bytes. zlib's gzread
 * reads gzip'd and plain files alike. Every header field is checked and the
 * file must hold exactly the bytes its header promises, so a truncated or
 * padded download is an error rather than a data set with zeros in it. */
#include "dataset_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
/* A generous bound on one image side or the item count; keeps the byte
 * count far from overflowing and catches garbage headers early. */
#define IDX_MAX_SIDE 65536u
#define IDX_MAX_ITEMS 100000000u

/* Reads exactly n bytes; returns how many it got (< n at the end), or -1. */
static long long read_full(gzFile g, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(g, buf + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static moe_status gz_fail(gzFile g, const char *path, const char *fix) {
    int code = 0;
    const char *msg = gzerror(g, &code);
    moe_status st = moe_error(MOE_ERR_FORMAT, "%s: unreadable (%s); %s", path,
                              msg && *msg ? msg : "read error", fix);
    gzclose(g);
    return st;
}

moe_status idx_read(const char *path, int ndims, const char *fix, idx_array *a) {
    a->data = NULL;
    a->ndims = ndims;
    gzFile g = gzopen(path, "rb");
    if (!g) return moe_error(MOE_ERR_IO, "%s: cannot open; %s", path, fix);
    uint8_t head[4 + 4 * 3];
    size_t head_len = 4 + 4 * (size_t)ndims;
    long long r = read_full(g, head, head_len);
    if (r < 0) return gz_fail(g, path, fix);
    if ((size_t)r < head_len) {
        gzclose(g);
        return moe_error(MOE_ERR_FORMAT,
                         "%s: truncated: %lld bytes, shorter than an idx header of %d "
                         "dimensions; %s",
                         path, r, ndims, fix);
    }
    uint32_t magic = be32(head), want = (uint32_t)IDX_UBYTE << 8 | (uint32_t)ndims;
    if (magic != want) {
        gzclose(g);
        return moe_error(MOE_ERR_FORMAT,
                         "%s: magic number 0x%08x, expected 0x%08x (idx, unsigned bytes, %d "
                         "dimensions); %s",
                         path, magic, want, ndims, fix);
    }
    size_t bytes = 1;
    for (int i = 0; i < ndims; i++) {
        a->dims[i] = be32(head + 4 + 4 * i);
        uint32_t limit = i == 0 ? IDX_MAX_ITEMS : IDX_MAX_SIDE;
        if (a->dims[i] == 0 || a->dims[i] > limit) {
            gzclose(g);
            return moe_error(MOE_ERR_FORMAT, "%s: dimension %d is %u (expected 1 to %u); %s", path,
                             i, a->dims[i], limit, fix);
        }
        bytes *= a->dims[i];
    }
    if (bytes > (size_t)INT_MAX) {
        gzclose(g);
        return moe_error(MOE_ERR_FORMAT, "%s: %zu bytes of data is more than libmoe reads; %s",
                         path, bytes, fix);
    }
    a->data = malloc(bytes);
    if (!a->data) {
        gzclose(g);
        return moe_error(MOE_ERR_NOMEM, "%s: out of memory for %zu bytes", path, bytes);
    }
    r = read_full(g, a->data, bytes);
    moe_status st = MOE_OK;
    if (r < 0) {
        st = gz_fail(g, path, fix);
        g = NULL;
    } else if ((size_t)r < bytes) {
        st = moe_error(MOE_ERR_FORMAT,
                       "%s: truncated: %lld of the %zu data bytes its header "
                       "promises; %s",
                       path, r, bytes, fix);
    } else {
        uint8_t extra[64];
        long long more = read_full(g, extra, sizeof extra);
        if (more < 0) {
            st = gz_fail(g, path, fix);
            g = NULL;
        } else if (more > 0)
            st = moe_error(MOE_ERR_FORMAT,
                           "%s: longer than its header says (bytes after the %zu data bytes); "
                           "%s",
                           path, bytes, fix);
    }
    if (g) gzclose(g);
    if (st != MOE_OK) {
        free(a->data);
        a->data = NULL;
    }
    return st;
}
