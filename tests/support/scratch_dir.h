/* A scratch folder per test program: created by the group setup, removed
 * with its contents by the teardown; scratch_path names files inside. */
#ifndef MOE_TEST_SCRATCH_DIR_H
#define MOE_TEST_SCRATCH_DIR_H

/* cmocka group setup/teardown. */
int scratch_setup(void **state);
int scratch_teardown(void **state);
/* "<scratch>/<rel>" in one of four rotating static buffers, so up to four
 * can be used in one expression. */
const char *scratch_path(const char *rel);

#endif
