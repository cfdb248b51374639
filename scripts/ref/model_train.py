"""Reference for tests/parity_model_train.c: a 2-layer MoE transformer (and
variants: decoders, and encoders on padded batches with masked-LM targets
and class labels) trained 10 AdamW steps in PyTorch (float64) from the same
initial weights; per-step losses, first-step gradients and final weights."""
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
    # encoders (padded batches): masked-LM; seed 003's post-norm [CLS]
    # classifier with sinusoidal positions; mean pooling with both heads
    "enc_mlm": dict(bidirectional=True),
    "enc_cls_post": dict(bidirectional=True, post_ln=True, pos="sinusoidal", n_classes=2,
                         pool="cls", moe_every=2),
    "enc_mean_both": dict(bidirectional=True, norm="rmsnorm", n_classes=3, pool="mean"),
}
# what each encoder's batches carry besides tokens and padding
ENCODER_HEADS = {"enc_mlm": ("lm",), "enc_cls_post": ("cls",), "enc_mean_both": ("lm", "cls")}
B, T, STEPS, LR = 2, 16, 10, 3e-3

tensors = [("variants", len(VARIANTS)), ("B", B), ("T", T), ("steps", STEPS), ("lr", LR)]
for vi, (vname, over) in enumerate(VARIANTS.items()):
    c = twin_gpt.default_config(max_seq_len=T, **over)
    P = twin_gpt.init_params(c, seed=vi)
    tokens = torch.randint(0, 256, (STEPS, B, T))
    targets = torch.randint(0, 256, (STEPS, B, T))
    targets[:, 0, :3] = -1  # ignored positions
    heads = ENCODER_HEADS.get(vname)
    pad = labels = None
    if heads:
        # sequence 1 of each step has 5..T-1 real tokens, the rest padding
        lengths = torch.randint(5, T, (STEPS,))
        pad = torch.ones(STEPS, B, T, dtype=torch.bool)
        for s in range(STEPS):
            pad[s, 1, lengths[s]:] = False
        masked = torch.rand(STEPS, B, T) < 0.3  # masked-LM: loss on a few positions
        targets = torch.where(masked & pad, targets, torch.full_like(targets, -1))
        labels = torch.randint(0, c["n_classes"], (STEPS, B)) if "cls" in heads else None
        if "lm" not in heads:
            targets = None
    names = [n for n, _ in twin_gpt.param_shapes(c)]
    for n in names:
        tensors.append((f"{vname}.init.{n}", P[n].detach().clone()))
    opt = torch.optim.AdamW([P[n] for n in names], lr=LR, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1)
    losses = []
    for s in range(STEPS):
        ce, aux = twin_gpt.forward(c, P, tokens[s], None if targets is None else targets[s],
                                   None if labels is None else labels[s],
                                   None if pad is None else pad[s])
        loss = ce + aux
        opt.zero_grad()
        loss.backward()
        if s == 0:
            for n in names:
                tensors.append((f"{vname}.grad0.{n}", P[n].grad.detach().clone()))
        opt.step()
        losses.append(loss.item())
    tensors += [(f"{vname}.tokens", tokens), (f"{vname}.losses", losses)]
    if targets is not None:
        tensors.append((f"{vname}.targets", targets))
    if labels is not None:
        tensors.append((f"{vname}.labels", labels))
    if pad is not None:
        tensors.append((f"{vname}.pad", pad.to(torch.int64)))
    for n in names:
        tensors.append((f"{vname}.final.{n}", P[n]))
write_ref(sys.argv[1], tensors)
