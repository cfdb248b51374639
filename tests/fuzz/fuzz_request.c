/* libFuzzer target: both request parsers (src/serve/request.c) over any
 * bytes, with the default limits. The body is handed over with its length
 * and no NUL terminator, as the HTTP layer does. Built and run by
 * tests/cli/fuzz_request.sh. */
#include "serve/serve.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    serve_limits lim;
    serve_limits_default(&lim);
    lim.max_tokens = 256; /* small limits reach the limit paths more often */
    lim.max_inputs = 8;
    /* a copy of exactly size bytes: reading past it is an ASan report */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    if (size) memcpy(body, data, size);
    serve_error err;
    serve_infer_request ir;
    serve_parse_infer(body, size, &lim, &ir, &err);
    serve_infer_request_free(&ir);
    serve_generate_request gr;
    serve_parse_generate(body, size, &lim, &gr, &err);
    serve_generate_request_free(&gr);
    free(body);
    return 0;
}
