/* safetensors internals shared with checkpoint loading: check a whole table
 * against an open file first, then read it without further failures. */
#ifndef MOE_IO_ST_INTERNAL_H
#define MOE_IO_ST_INTERNAL_H

#include "moe/safetensors.h"

/* Every table tensor present with the same shape and a float dtype, and no
 * tensor the table lacks; MOE_ERR_FORMAT naming the first problem. */
moe_status st_check_table(const moe_st_file *f, const moe_param_table *t);
/* Converts every table tensor into block; only after st_check_table passed. */
void st_read_table(const moe_st_file *f, const moe_param_table *t, moe_real *block);

#endif
