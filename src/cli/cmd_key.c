/* moe key new: a random API key for moe serve, and the line for its keys
 * file (which holds only the key's SHA-256). */
#include "cli/cli.h"
#include "serve/serve.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

static void help(void) {
    printf("usage: moe key new --id ID --scope infer|train\n\n"
           "Prints a new random API key (line 1: give it to the client, it is shown only\n"
           "once) and the line for moe serve's --keys file (line 2: the id, the scope and\n"
           "the key's SHA-256; the file never holds the key itself).\n"
           "Scope infer allows inference, models and reading jobs; train also allows\n"
           "starting, cancelling and resuming training jobs.\n\n"
           "  --id ID         a name for the key, shown in the audit log (A-Z a-z 0-9 _ . -)\n"
           "  --scope SCOPE   infer or train\n");
}

int cmd_key(int argc, char **argv) {
    const char *action = NULL, *id = NULL, *scope = NULL;
    const cli_opt opts[] = {
        {"id", CLI_STRING, &id, 0, 0},
        {"scope", CLI_STRING, &scope, 0, 0},
        {"action", CLI_ARG, &action, 0, 0},
        {0, 0, 0, 0, 0},
    };
    int rc = cli_parse("key", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (!action || strcmp(action, "new")) {
        fprintf(stderr, "moe key: want 'moe key new --id ID --scope infer|train'\n");
        return 2;
    }
    if (!id || !scope) {
        fprintf(stderr, "moe key new: --id and --scope are required\n");
        return 2;
    }
    char key[128], line[256];
    moe_status st = serve_key_new(id, scope, key, sizeof key, line, sizeof line);
    if (st != MOE_OK) return cli_fail("key", "cannot make a key", st);
    printf("%s\n%s\n", key, line);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}
