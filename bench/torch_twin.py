"""PyTorch twin of `moe bench --config configs/bench-moe.json` (and -dense):
the model of ../shared/anchors/torch_moe_cpu.py (byte vocab 256, d_model 256,
4 layers, 4 heads, seq 256, batch 8, 8 experts, top-2, SwiGLU experts of
width 512, Switch aux loss, AdamW), one training step timed like the anchor
(8 steps, median of the last 6). Usage: torch_twin.py moe|dense [threads].
Prints one JSON line with step_ms, tok_per_s and peak_rss_mb."""
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
V, D, L, H, S, B, E, K, FF = 256, 256, 4, 4, 256, 8, 8, 2, 512


class MoE(nn.Module):
    def __init__(s, dense=False):
        super().__init__()
        s.dense = dense
        if dense:
            s.w1 = nn.Linear(D, FF * K, bias=False)
            s.w3 = nn.Linear(D, FF * K, bias=False)
            s.w2 = nn.Linear(FF * K, D, bias=False)
        else:
            s.gate = nn.Linear(D, E, bias=False)
            s.w1 = nn.Parameter(torch.randn(E, D, FF) * D**-.5)
            s.w3 = nn.Parameter(torch.randn(E, D, FF) * D**-.5)
            s.w2 = nn.Parameter(torch.randn(E, FF, D) * FF**-.5)

    def forward(s, x):
        if s.dense:
            return s.w2(F.silu(s.w1(x)) * s.w3(x)), 0.
        p = s.gate(x).softmax(-1)
        w, idx = p.topk(K, -1)
        w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        mask = F.one_hot(idx, E).permute(2, 1, 0)
        for e in range(E):
            kk, tok = torch.where(mask[e])
            h = x[tok]
            y = (F.silu(h @ s.w1[e]) * (h @ s.w3[e])) @ s.w2[e]
            out.index_add_(0, tok, y * w[tok, kk, None])
        f = F.one_hot(idx, E).float().sum(1).mean(0) / K
        return out, E * (f * p.mean(0)).sum()


class Block(nn.Module):
    def __init__(s, dense):
        super().__init__()
        s.ln1, s.qkv, s.proj = nn.LayerNorm(D), nn.Linear(D, 3 * D), nn.Linear(D, D)
        s.ln2, s.moe = nn.LayerNorm(D), MoE(dense)

    def forward(s, x):
        Bb, T, C = x.shape
        q, k, v = s.qkv(s.ln1(x)).split(D, -1)
        q, k, v = [t.view(Bb, T, H, C // H).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) * (C // H)**-.5
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf')).softmax(-1)
        x = x + s.proj((att @ v).transpose(1, 2).reshape(Bb, T, C))
        y, aux = s.moe(s.ln2(x).reshape(-1, C))
        return x + y.view(Bb, T, C), aux


class GPT(nn.Module):
    def __init__(s, dense=False):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, D), nn.Embedding(S, D)
        s.blocks = nn.ModuleList([Block(dense) for _ in range(L)])
        s.lnf = nn.LayerNorm(D)

    def forward(s, idx, tgt):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        aux = 0.
        for b in s.blocks:
            x, a = b(x)
            aux = aux + a
        logits = s.lnf(x) @ s.wte.weight.T
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1)) + 0.01 * aux


dense = sys.argv[1] == "dense"
m = GPT(dense)
opt = torch.optim.AdamW(m.parameters(), lr=3e-4)
x, y = torch.randint(0, V, (B, S)), torch.randint(0, V, (B, S))
ts = []
for i in range(8):
    t = time.perf_counter()
    loss = m(x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ts.append(time.perf_counter() - t)
ms = sorted(ts[2:])[len(ts[2:]) // 2] * 1e3
print(json.dumps(dict(name="torch-" + sys.argv[1], torch=torch.__version__,
                      threads=torch.get_num_threads(), step_ms=round(ms, 1),
                      tok_per_s=round(B * S / ms * 1e3),
                      peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      params=sum(p.numel() for p in m.parameters()))))
