/* Option parsing for every subcommand: a table of options drives
 * getopt_long, checks numbers against their ranges, collects --set and
 * hands out positional arguments. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define CLI_MAX_OPTS 32

static int parse_number(const char *cmd, const cli_opt *o, const char *text) {
    char *end;
    errno = 0;
    double v = o->kind == CLI_INT ? (double)strtol(text, &end, 10) : strtod(text, &end);
    if (errno || end == text || *end || !(v >= o->lo && v <= o->hi)) {
        fprintf(stderr, "moe %s: --%s wants %s in [%.10g, %.10g], got '%s'\n", cmd, o->name,
                o->kind == CLI_INT ? "an integer" : "a number", o->lo, o->hi, text);
        return 2;
    }
    if (o->kind == CLI_INT)
        *(int *)o->dst = (int)v;
    else
        *(float *)o->dst = (float)v;
    return 0;
}

static int store(const char *cmd, const cli_opt *o, char *value) {
    switch (o->kind) {
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_STRING:
        *(const char **)o->dst = value;
        return 0;
    case CLI_INT:
    case CLI_FLOAT:
        return parse_number(cmd, o, value);
    case CLI_ARG:
        return 2; /* positional: never an option */
    case CLI_SETS: {
        cli_sets *s = o->dst;
        if (s->n >= CLI_MAX_SETS) {
            fprintf(stderr, "moe %s: more than %d --set options\n", cmd, CLI_MAX_SETS);
            return 2;
        }
        s->v[s->n++] = value;
        return 0;
    }
    }
    return 2;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*help)(void)) {
    struct option longs[CLI_MAX_OPTS + 2];
    int n = 0, n_opts = 0;
    for (; n_opts < CLI_MAX_OPTS && opts[n_opts].name; n_opts++)
        if (opts[n_opts].kind != CLI_ARG)
            longs[n++] = (struct option){
                opts[n_opts].name, opts[n_opts].kind == CLI_FLAG ? no_argument : required_argument,
                NULL, n_opts};
    longs[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longs[n] = (struct option){0, 0, 0, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'h') {
            help();
            return 0;
        }
        if (c == '?' || c < 0 || c >= n_opts) break;
        int rc = store(cmd, &opts[c], optarg);
        if (rc) return rc;
    }
    /* getopt_long moved the positional arguments to the end, in order */
    for (int i = 0; c == -1 && i < n_opts && optind < argc; i++)
        if (opts[i].kind == CLI_ARG) *(const char **)opts[i].dst = argv[optind++];
    if (c == -1 && optind >= argc) return CLI_CONTINUE;
    if (c == -1) fprintf(stderr, "moe %s: unexpected argument '%s'\n", cmd, argv[optind]);
    fprintf(stderr, "moe %s: see 'moe %s --help'\n", cmd, cmd);
    return 2;
}
