/* The smallest complete libmoe program: build a MoE transformer from the
 * default config, train it a few steps on a repeating byte pattern, and
 * continue a prompt. Build against an installed libmoe:
 *   cc minimal.c $(pkg-config --cflags --libs libmoe) -o minimal */
#include <moe/moe.h>

#include <stdio.h>

int main(void) {
    moe_run_config c;
    moe_config_defaults(&c);
    const char *sets[] = {"model.n_layer=2", "model.d_model=64", "model.max_seq_len=32",
                          "train.seq_len=32", "train.optim.lr=3e-3"};
    for (int i = 0; i < 5; i++)
        if (moe_config_set(&c, sets[i]) != MOE_OK) goto fail;
    moe_model *m;
    if (moe_model_create(&m, &c.model, 1) != MOE_OK) goto fail;
    moe_optim opt;
    size_t n = moe_model_table(m)->total;
    if (moe_optim_init(&opt, &c.train.optim, n) != MOE_OK) goto fail;

    const char *text = "abcdefgh";
    int32_t x[32], y[32];
    for (int i = 0; i < 32; i++) {
        x[i] = text[i % 8];
        y[i] = text[(i + 1) % 8];
    }
    moe_arena arena;
    moe_arena_init(&arena);
    for (int step = 0; step < 40; step++) {
        double ce, aux;
        moe_arena_reset(&arena);
        moe_model_zero_grads(m);
        if (moe_model_forward(m, x, y, 1, 32, 1, NULL, &arena, &ce, &aux) != MOE_OK ||
            moe_model_backward(m, &arena, 1.0f) != MOE_OK)
            goto fail;
        moe_grad_clip(moe_model_grads(m), n, 1.0f);
        moe_optim_step(&opt, moe_model_params(m), moe_model_grads(m), c.train.optim.lr);
        if (step % 10 == 0) printf("step %2d loss %.4f\n", step, ce + aux);
    }
    int32_t out[12];
    moe_sampling greedy = {0, 0, 1};
    if (moe_model_generate(m, x, 4, 8, &greedy, NULL, out) != MOE_OK) goto fail;
    printf("abcd -> ");
    for (int i = 0; i < 12; i++) putchar(out[i]);
    putchar('\n');
    moe_arena_free(&arena);
    moe_optim_free(&opt);
    moe_model_free(m);
    return 0;
fail:
    fprintf(stderr, "minimal: %s\n", moe_last_error());
    return 1;
}
