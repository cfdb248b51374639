/* moe serve: the HTTP API (include/moe/serve.h does the work); this file
 * parses the options, turns SIGTERM/SIGINT into a graceful stop and
 * prints what an operator needs on stderr. */
#include "cli/cli.h"
#include "moe/serve.h"
#include "serve/http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void help(void) {
    printf("usage: moe serve [--models DIR] [--model NAME=CKPT]... [--host ADDR] [--port N]\n"
           "                 [--port-file FILE] [--keys FILE] [--state-dir DIR] [--data-dir DIR]\n"
           "                 [--configs-dir DIR] [--max-body BYTES] [--max-tokens N]\n"
           "                 [--max-inputs N] [--max-jobs N] [--max-batch N]\n"
           "                 [--batch-window-ms MS] [--batch-window-always] [--max-queue N]\n"
           "                 [--threads N]\n"
           "                 [--fallback-expert E] [--public-metrics]\n\n"
           "An authenticated HTTP API for inference on trained checkpoints and for training\n"
           "jobs, with an audit log, Prometheus metrics, /openapi.json and a dashboard at /.\n"
           "docs/serve.md is the guide.\n\n"
           "  --models DIR          serve every checkpoint folder under DIR (its name is the "
           "model's)\n"
           "  --model NAME=CKPT     serve one checkpoint as NAME (repeatable)\n"
           "  --host ADDR           address to listen on (127.0.0.1; 0.0.0.0 or :: for all)\n"
           "  --port N              TCP port (8080; 0 picks a free one)\n"
           "  --port-file FILE      write the bound port there once accepting connections\n"
           "  --keys FILE           API keys, lines \"id scope sha256:<hex>\" from `moe key new`;\n"
           "                        and/or MOE_API_KEYS=id:scope:key,... (at least one key)\n"
           "  --state-dir DIR       audit.jsonl and training jobs (serve-state)\n"
           "  --data-dir DIR        files a training config names must be inside it (.)\n"
           "  --configs-dir DIR     presets for POST /v1/train {\"config\": NAME} (configs)\n"
           "  --max-body BYTES      request body limit; larger gives 413 (1048576)\n"
           "  --max-tokens N        tokens per request, prompt plus generated (4096)\n"
           "  --max-inputs N        inputs per inference request (64)\n"
           "  --max-jobs N          training jobs running at once; more gives 429 (1)\n"
           "  --max-batch N         inference requests merged into one forward pass (32)\n"
           "  --batch-window-ms MS  how long a model waits for more requests to batch (2)\n"
           "  --batch-window-always wait the window before every batch (default: only under\n"
           "                        load, so a lone client never waits)\n"
           "  --max-queue N         requests waiting per model; more gives 503 (1024)\n"
           "  --threads N           HTTP threads (4); waiting inferences hold none\n"
           "  --fallback-expert E   send tokens whose router scores are not finite to expert E\n"
           "  --public-metrics      serve /metrics without a key\n\n"
           "SIGTERM or SIGINT: stop accepting, finish in-flight requests, checkpoint running\n"
           "jobs (they become \"interrupted\", resumable), exit 0.\n");
}

static void warn(const char *message, void *user) {
    (void)user;
    fprintf(stderr, "moe serve: %s\n", message);
}

static void ready(const moe_server *s, void *user) {
    const char *host = user;
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "moe serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", host,
            v6 ? "]" : "", moe_serve_port(s));
}

/* The routing table, one "METHOD PATH" a line (tests compare it with
 * /openapi.json). */
static int list_routes(void) {
    int n;
    const http_route *t = serve_http_routes(&n);
    for (int i = 0; i < n; i++) printf("%s %s\n", t[i].method, t[i].pattern);
    return 0;
}

int cmd_serve(int argc, char **argv) {
    moe_serve_options o;
    moe_serve_options_default(&o);
    cli_sets models = {0};
    int max_body = (int)o.max_body_bytes, list = 0;
    float window = (float)o.batch_window_ms;
    const cli_opt opts[] = {
        {"models", CLI_STRING, &o.models_dir, 0, 0},
        {"model", CLI_SETS, &models, 0, 0},
        {"host", CLI_STRING, &o.host, 0, 0},
        {"port", CLI_INT, &o.port, 0, 65535},
        {"port-file", CLI_STRING, &o.port_file, 0, 0},
        {"keys", CLI_STRING, &o.keys_file, 0, 0},
        {"state-dir", CLI_STRING, &o.state_dir, 0, 0},
        {"data-dir", CLI_STRING, &o.data_dir, 0, 0},
        {"configs-dir", CLI_STRING, &o.configs_dir, 0, 0},
        {"max-body", CLI_INT, &max_body, 64, 1 << 30},
        {"max-tokens", CLI_INT, &o.max_tokens, 1, 1 << 24},
        {"max-inputs", CLI_INT, &o.max_inputs, 1, 1 << 20},
        {"max-jobs", CLI_INT, &o.max_jobs, 0, 1024},
        {"max-batch", CLI_INT, &o.max_batch, 1, 4096},
        {"batch-window-ms", CLI_FLOAT, &window, 0, 10000},
        {"batch-window-always", CLI_FLAG, &o.batch_window_always, 0, 0},
        {"max-queue", CLI_INT, &o.max_queue, 1, 1 << 24},
        {"threads", CLI_INT, &o.threads, 1, 256},
        {"fallback-expert", CLI_INT, &o.fallback_expert, 0, 1 << 20},
        {"public-metrics", CLI_FLAG, &o.public_metrics, 0, 0},
        {"list-routes", CLI_FLAG, &list, 0, 0}, /* hidden: for tests/cli/serve_openapi.sh */
        {0, 0, 0, 0, 0},
    };
    int rc = cli_parse("serve", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (list) return list_routes();
    o.max_body_bytes = (size_t)max_body;
    o.batch_window_ms = window;
    o.models = (const char *const *)models.v;
    o.n_models = models.n;
    o.keys_env = getenv("MOE_API_KEYS");
    o.warn = warn;
    if (!o.models_dir && models.n == 0)
        fprintf(stderr, "moe serve: no --models or --model: serving training jobs only\n");

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    moe_status st = moe_serve_run(&o, &stop_requested, ready, (void *)o.host);
    if (st != MOE_OK) return cli_fail("serve", "cannot start", st);
    fprintf(stderr, "moe serve: stopped\n");
    return 0;
}
