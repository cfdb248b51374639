"""Reference for tests/parity_model_train.c: a 2-layer MoE transformer (and
variants) trained 10 AdamW steps in PyTorch (float64) from the same initial
weights; per-step losses, first-step gradients and final weights."""
import sys

import torch

from refio import write_ref
import twin_gpt

torch.manual_seed(0)

VARIANTS = {
    # name: config overrides
    "gpt": dict(),
    "mixtral": dict(pos="rope", norm="rmsnorm", n_kv_head=2, tied_embeddings=False,
                    attn_bias=False, topk_before_softmax=True, n_experts=8, top_k=2),
    "alt": dict(moe_every=2, ffn_act="swiglu", moe_act="gelu", top_k=1, renormalize=False,
                switch_divide_by_k=False),
}
B, T, STEPS, LR = 2, 16, 10, 3e-3

tensors = [("variants", len(VARIANTS)), ("B", B), ("T", T), ("steps", STEPS), ("lr", LR)]
for vi, (vname, over) in enumerate(VARIANTS.items()):
    c = twin_gpt.default_config(max_seq_len=T, **over)
    P = twin_gpt.init_params(c, seed=vi)
    tokens = torch.randint(0, 256, (STEPS, B, T))
    targets = torch.randint(0, 256, (STEPS, B, T))
    targets[:, 0, :3] = -1  # ignored positions
    names = [n for n, _ in twin_gpt.param_shapes(c)]
    for n in names:
        tensors.append((f"{vname}.init.{n}", P[n].detach().clone()))
    opt = torch.optim.AdamW([P[n] for n in names], lr=LR, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1)
    losses = []
    for s in range(STEPS):
        ce, aux = twin_gpt.forward(c, P, tokens[s], targets[s])
        loss = ce + aux
        opt.zero_grad()
        loss.backward()
        if s == 0:
            for n in names:
                tensors.append((f"{vname}.grad0.{n}", P[n].grad.detach().clone()))
        opt.step()
        losses.append(loss.item())
    tensors += [(f"{vname}.tokens", tokens), (f"{vname}.targets", targets),
                (f"{vname}.losses", losses)]
    for n in names:
        tensors.append((f"{vname}.final.{n}", P[n]))
write_ref(sys.argv[1], tensors)
