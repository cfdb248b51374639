/* The scratch folder of a test program (scratch_dir.h). */
#include "scratch_dir.h"

#include <stdio.h>
#include <stdlib.h>

static char root[64];

int scratch_setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moe_test_XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

int scratch_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

const char *scratch_path(const char *rel) {
    static char p[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", root, rel);
    return p[k];
}
