/* moe report: the HTML report of a run directory. */
#include "cli/cli.h"

#include <stdio.h>

static void help(void) {
    printf("usage: moe report RUN_DIR [--out FILE]\n\n"
           "Writes one self-contained HTML page (it opens offline) with the charts of a\n"
           "training run: learning curves, expert utilization, load balance and alerts,\n"
           "routing by topic, a token-level view and a summary. It reads only the run\n"
           "directory: metrics.jsonl, and where present routing.json, model_info.json,\n"
           "results.json and config.json (docs/monitoring.md).\n\n"
           "  RUN_DIR      a run directory of moe train, e.g. runs/tiny-20250101T000000Z\n"
           "  --out FILE   where to write the page (default RUN_DIR/report.html)\n\n"
           "plotly.js is inlined from $MOE_PLOTLY_JS, else the installed\n"
           "share/libmoe/plotly.min.js, else the source tree's node_modules (npm ci).\n");
}

int cmd_report(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL;
    const cli_opt opts[] = {
        {"RUN_DIR", CLI_ARG, &run_dir, 0, 0}, {"out", CLI_STRING, &out, 0, 0}, {0}};
    int rc = cli_parse("report", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (!run_dir) {
        fprintf(stderr, "moe report: RUN_DIR is required: moe report runs/<run> [--out FILE]\n");
        return 2;
    }
    moe_status st = moe_report_write(run_dir, out);
    if (st != MOE_OK) return cli_fail("report", "cannot write the report", st);
    if (out)
        printf("%s\n", out);
    else
        printf("%s/report.html\n", run_dir);
    return 0;
}
