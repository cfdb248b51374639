"""Reference for tests/parity_moe_layer.c: a plain PyTorch MoE layer (loop
over experts, float64) with the same routing, capacity and auxiliary-loss
conventions as src/nn/moe (see docs/moe-layer.md). For each config it stores
inputs, weights, out, the aux values, dx and every weight gradient of
loss = sum(out * dout) + aux_total. Noisy gating is not covered here (the
gradient check covers it). Usage: python3 moe_layer.py OUTPATH"""
import math
import os
import sys

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import write_ref  # noqa: E402

ACTS = {"relu": 0, "gelu": 1, "silu": 2, "swiglu": 3}
FIELDS = ["T", "D", "E", "k", "F", "act", "bias", "sigmoid", "topk_before", "renorm",
          "temp", "cf", "shared", "switch", "divk", "z", "var", "cv", "round_robin"]


def cfg(E, k, act="relu", **kw):
    c = dict(T=24, D=16, E=E, k=k, F=12, act=act, bias=0, sigmoid=0, topk_before=0,
             renorm=0, temp=1.0, cf=1.0, shared=0, switch=0.0, divk=1, z=0.0, var=0.0,
             cv=0.0, round_robin=0)
    c.update(kw)
    return c


ALL_AUX = dict(switch=0.1, z=0.01, var=0.5, cv=0.05)
CONFIGS = [
    cfg(2, 1, "relu", bias=1),
    cfg(4, 2, "gelu", renorm=1, **ALL_AUX),
    cfg(4, 2, "swiglu", topk_before=1, cf=0.5),
    cfg(8, 2, "relu", sigmoid=1, cf=0.0, renorm=1, switch=0.2),
    cfg(8, 4, "swiglu", cf=0.5, bias=1, shared=6),
    cfg(16, 1, "gelu", switch=0.3, divk=0),
    cfg(16, 4, "relu", sigmoid=1, **ALL_AUX),
    cfg(16, 2, "swiglu", topk_before=1, cf=0.0, temp=0.5),
    cfg(2, 2, "silu", renorm=1, cf=0.0, z=0.1),
    cfg(4, 1, "gelu", sigmoid=1, cf=0.5, z=0.05, var=1.0),
    cfg(8, 1, "relu", topk_before=1, temp=2.0, **ALL_AUX),
    cfg(4, 4, "swiglu", shared=5),
    cfg(8, 2, "relu", renorm=1, bias=1, shared=7, divk=0, cf=0.5, **ALL_AUX),
    cfg(4, 2, "gelu", round_robin=1, switch=0.2, z=0.1),
]


def ffn(x, w1, b1, w3, b3, w2, b2, act):
    a = x @ w1.T + (b1 if b1 is not None else 0)
    if act == "swiglu":
        h = Fn.silu(a) * (x @ w3.T + (b3 if b3 is not None else 0))
    else:
        h = {"relu": torch.relu, "gelu": Fn.gelu, "silu": Fn.silu}[act](a)
    return h @ w2.T + (b2 if b2 is not None else 0)


def cv2(v):
    return v.var() / (v.mean() ** 2 + 1e-10)  # unbiased var, as Shazeer's code


def moe(c, x, p):
    T, E, k = x.shape[0], c["E"], c["k"]
    logits = x @ p["gate"].T / c["temp"]
    lse = torch.logsumexp(logits, 1)
    scores = torch.sigmoid(logits) if c["sigmoid"] else torch.softmax(logits, 1)
    if c["round_robin"]:
        topi = torch.tensor([[(t * k + j) % E for j in range(k)] for t in range(T)])
        w = torch.full((T, k), 1.0 / k, dtype=x.dtype)
    else:
        topv, topi = torch.topk(logits, k, dim=1)
        if not c["sigmoid"] and c["topk_before"]:
            w = torch.softmax(topv, 1)
        else:
            w = scores.gather(1, topi)
            if c["renorm"]:
                w = w / w.sum(1, keepdim=True)
    cap = math.ceil(c["cf"] * T * k / E) if c["cf"] > 0 else T * k
    kept = [0] * E
    pairs = [[] for _ in range(E)]
    for t in range(T):  # admission in token order, then slot order
        for j in range(k):
            e = int(topi[t, j])
            if kept[e] < cap:
                kept[e] += 1
                pairs[e].append((t, j))
    out = torch.zeros_like(x)
    if c["shared"]:
        out = out + ffn(x, p["shared_w1"], None, p.get("shared_w3"), None, p["shared_w2"],
                        None, c["act"])
    for e in range(E):
        if not pairs[e]:
            continue
        tok = torch.tensor([t for t, _ in pairs[e]])
        slot = torch.tensor([j for _, j in pairs[e]])
        g = lambda n: p[n][e] if n in p else None  # noqa: E731
        ye = ffn(x[tok], g("w1"), g("b1"), g("w3"), g("b3"), g("w2"), g("b2"), c["act"])
        out = out.index_add(0, tok, ye * w[tok, slot].unsqueeze(1))
    P = scores.mean(0)
    routed = torch.bincount(topi.flatten(), minlength=E).to(x.dtype)
    f = routed / (T * k if c["divk"] else T)
    aux_switch = E * (f * P).sum()
    aux_z = (lse ** 2).mean()
    aux_var = P.var(unbiased=False)
    imp = torch.zeros(E, dtype=x.dtype).scatter_add(0, topi.flatten(), w.flatten())
    aux_cv = cv2(imp) + cv2(routed) if E > 1 else torch.zeros((), dtype=x.dtype)
    total = (c["switch"] * aux_switch + c["z"] * aux_z + c["var"] * aux_var
             + c["cv"] * aux_cv)
    aux = torch.stack([aux_switch, aux_z, aux_var, aux_cv, total])
    n_dropped = T * k - sum(kept)
    return out, aux, torch.tensor(kept, dtype=torch.float64), n_dropped


def main(path):
    torch.manual_seed(0)
    tensors = [("n_configs", len(CONFIGS))]
    for i, c in enumerate(CONFIGS):
        T, D, E, F = c["T"], c["D"], c["E"], c["F"]
        glu = c["act"] == "swiglu"
        dt = torch.float64
        p = {"gate": torch.randn(E, D, dtype=dt) * 0.5,
             "w1": torch.randn(E, F, D, dtype=dt) / math.sqrt(D),
             "w2": torch.randn(E, D, F, dtype=dt) / math.sqrt(F)}
        if glu:
            p["w3"] = torch.randn(E, F, D, dtype=dt) / math.sqrt(D)
        if c["bias"]:
            p["b1"] = torch.randn(E, F, dtype=dt) * 0.1
            if glu:
                p["b3"] = torch.randn(E, F, dtype=dt) * 0.1
            p["b2"] = torch.randn(E, D, dtype=dt) * 0.1
        if c["shared"]:
            Fs = c["shared"]
            p["shared_w1"] = torch.randn(Fs, D, dtype=dt) / math.sqrt(D)
            if glu:
                p["shared_w3"] = torch.randn(Fs, D, dtype=dt) / math.sqrt(D)
            p["shared_w2"] = torch.randn(D, Fs, dtype=dt) / math.sqrt(Fs)
        x = torch.randn(T, D, dtype=dt)
        dout = torch.randn(T, D, dtype=dt)
        x.requires_grad_(True)
        for v in p.values():
            v.requires_grad_(True)
        out, aux, kept, n_dropped = moe(c, x, p)
        loss = (out * dout).sum() + aux[4]
        loss.backward()
        pre = "c%d." % i
        vec = [float(c[f]) if f != "act" else float(ACTS[c["act"]]) for f in FIELDS]
        tensors += [(pre + "cfg", vec), (pre + "x", x), (pre + "dout", dout),
                    (pre + "out", out), (pre + "aux", aux), (pre + "kept", kept),
                    (pre + "n_dropped", n_dropped), (pre + "dx", x.grad)]
        for n, v in p.items():
            tensors += [(pre + n, v), (pre + "d_" + n, v.grad)]
    write_ref(path, tensors)


if __name__ == "__main__":
    main(sys.argv[1])
