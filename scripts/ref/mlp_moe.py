"""Reference for tests/parity_mlp_moe.c: a PyTorch twin (float64) of seed
002's model, the family mlp_moe, written from its formulas
(docs/mlp_moe.md):

  router: clean = x Wg^T / T; in training noisy = clean + eps * (softplus(x
  Wn^T) + 0.01) / T with eps GIVEN (so both sides use the same noise);
  softmax over all E, top-k, the k values divided by their sum when
  renormalising; gates [B, E] with 0 for unchosen experts;
  experts: softmax(relu(x W1^T + b1) W2^T + b2); p_hat = sum_e gate_e y_e;
  task = mean_b(w_b * -sum_c t_bc log clamp(p_hat_bc, 1e-12, 1));
  cv = cv^2(importance) + cv^2(load), load = Shazeer's smooth probability
  of staying in the top k (thresholds: the k-th and (k+1)-th largest NOISY
  logits) when noise was drawn and k < E, else the count of chosen rows;
  param_div = mean over pairs cos^2(flat fc1.weight ++ fc2.weight);
  output_div = mean over pairs |cos(mean_b y_i, mean_b y_j)|;
  js = -mean over pairs JS(clamp(mean_i, 1e-8, 1), clamp(mean_j, 1e-8, 1)).

Tensors use the C family's layout: gate.weight [E, F] is the seed's w_gate
[F, E] transposed. Stores, per case, the config, inputs, eps, parameters,
every loss term, p_hat, the gates, the experts' log-outputs and every
parameter gradient of the total loss; for some cases also the total loss
over 5 Adam steps (lr 5e-3, each step with its own given eps).
Usage: mlp_moe.py OUTPATH"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import write_ref  # noqa: E402

D = torch.float64
B, F, H, C = 16, 10, 12, 7
FIELDS = ["B", "F", "H", "C", "E", "k", "noisy", "renorm", "training", "hard", "weights",
          "temp", "cv", "pd", "od", "js", "adam_steps"]
ADAM_LR = float(np.float32(5e-3))


def case(E, k, **kw):
    c = dict(B=B, F=F, H=H, C=C, E=E, k=k, noisy=1, renorm=1, training=1, hard=0, weights=1,
             temp=1.0, cv=0.1, pd=0.2, od=0.3, js=0.4, adam_steps=0, zero_gate=0)
    c.update(kw)
    return c


CASES = [
    case(4, 2, adam_steps=5),
    case(4, 1, hard=1, adam_steps=5),
    case(3, 2, renorm=0, weights=0),
    case(4, 2, training=0),               # noisy config in eval: no noise, hard load
    case(2, 2),                           # k == E: load counts every row
    case(4, 1, renorm=0, noisy=0, temp=0.7),
    case(4, 2, zero_gate=1, adam_steps=5),  # the seed's start: zero gate and noise
    case(1, 1, hard=1, weights=0),
    case(5, 3, pd=0.0, od=0.0, js=0.0, hard=1),
]


def f32(t):
    """Rounds to float32 so the C side (float) starts from the same values."""
    return t.to(torch.float32).to(D)


def uni(shape, bound, g):
    return f32((torch.rand(shape, dtype=D, generator=g) * 2 - 1) * bound)


def make_params(c, g):
    E = c["E"]
    p = {}
    gate_scale = 0.0 if c["zero_gate"] else 1.0
    p["gate.weight"] = uni((E, F), 1.0, g) * gate_scale
    if c["noisy"]:
        p["gate.noise"] = uni((E, F), 0.5, g) * gate_scale
    for e in range(E):
        p[f"experts.{e}.fc1.weight"] = uni((H, F), 1 / F ** 0.5, g)
        p[f"experts.{e}.fc1.bias"] = uni((H,), 1 / F ** 0.5, g)
        p[f"experts.{e}.fc2.weight"] = uni((C, H), 1 / H ** 0.5, g)
        p[f"experts.{e}.fc2.bias"] = uni((C,), 1 / H ** 0.5, g)
    return {k: v.requires_grad_() for k, v in p.items()}


def cv2(v):
    if v.numel() < 2:
        return torch.zeros((), dtype=D)
    return v.var() / (v.mean() ** 2 + 1e-10)


def pairs(E):
    return [(i, j) for i in range(E) for j in range(i + 1, E)]


def forward(c, p, x, target, w, eps):
    E, k, T = c["E"], c["k"], c["temp"]
    noise = c["noisy"] and c["training"]
    clean = x @ p["gate.weight"].T / T
    if noise:
        std = (Fn.softplus(x @ p["gate.noise"].T) + 0.01) / T
        logits = clean + eps * std
    else:
        logits = clean
    probs = torch.softmax(logits, 1)
    topv, topi = probs.topk(k, dim=1)
    wk = topv / topv.sum(1, keepdim=True) if c["renorm"] else topv
    gates = torch.zeros(x.shape[0], E, dtype=D).scatter(1, topi, wk)
    importance = gates.sum(0)
    if noise and k < E:
        top = logits.topk(k + 1, dim=1).values
        thr_in, thr_out = top[:, k:k + 1], top[:, k - 1:k]
        normal = torch.distributions.Normal(0.0, 1.0)
        p_in = normal.cdf((clean - thr_in) / std)
        p_out = normal.cdf((clean - thr_out) / std)
        load = torch.where(logits > thr_in, p_in, p_out).sum(0)
    else:
        load = (gates > 0).sum(0).to(D)
    cv = cv2(importance) + cv2(load)

    ys, logys = [], []
    for e in range(E):
        h = torch.relu(Fn.linear(x, p[f"experts.{e}.fc1.weight"], p[f"experts.{e}.fc1.bias"]))
        z = Fn.linear(h, p[f"experts.{e}.fc2.weight"], p[f"experts.{e}.fc2.bias"])
        ys.append(torch.softmax(z, 1))
        logys.append(torch.log_softmax(z, 1))
    Y = torch.stack(ys)  # [E, B, C]
    phat = (gates.T.unsqueeze(2) * Y).sum(0)

    per = -(target * torch.log(phat.clamp(1e-12, 1.0))).sum(1)
    wper = per * w if w is not None else per
    # the seed's mean of w * l; an ignored row (label -1, zero target) is
    # left out of the count
    task = wper.sum() / (target.sum(1) > 0).sum()

    P = pairs(E)
    zero = torch.zeros((), dtype=D)
    vecs = [torch.cat([p[f"experts.{e}.fc1.weight"].reshape(-1),
                       p[f"experts.{e}.fc2.weight"].reshape(-1)]) for e in range(E)]
    pd = sum((Fn.cosine_similarity(vecs[i], vecs[j], dim=0) ** 2 for i, j in P), zero)
    means = Y.mean(1)
    od = sum((Fn.cosine_similarity(means[i:i + 1], means[j:j + 1], dim=1).abs().sum()
              for i, j in P), zero)
    mc = means.clamp(1e-8, 1.0)
    js = zero
    for i, j in P:
        a, b = mc[i], mc[j]
        m = 0.5 * (a + b)
        kl_a = (a * (torch.log(a + 1e-8) - torch.log(m + 1e-8))).sum()
        kl_b = (b * (torch.log(b + 1e-8) - torch.log(m + 1e-8))).sum()
        js = js + 0.5 * (kl_a + kl_b)
    n = max(1, len(P))
    pd, od, js = pd / n, od / n, -js / n
    aux = c["cv"] * cv + c["pd"] * pd + c["od"] * od + c["js"] * js
    return dict(task=task, cv=cv, param_div=pd, output_div=od, js=js, aux=aux,
                total=task + aux, phat=phat, gates=gates, logy=torch.stack(logys))


def f32c(v):
    return float(np.float32(v))


def main(path):
    g = torch.Generator().manual_seed(2024)
    out = [("n_cases", len(CASES))]
    for i, c in enumerate(CASES):
        # the coefficients the C side holds as float
        for key in ("temp", "cv", "pd", "od", "js"):
            c[key] = f32c(c[key])
        pre = f"c{i}."
        E = c["E"]
        x = f32(torch.rand(B, F, dtype=D, generator=g) * 2 - 1)
        if c["hard"]:
            labels = torch.randint(0, C, (B,), generator=g)
            labels[3] = -1  # an ignored row
            target = torch.zeros(B, C, dtype=D)
            rows = labels >= 0
            target[rows] = Fn.one_hot(labels[rows], C).to(D)
        else:
            target = f32(torch.softmax(torch.randn(B, C, dtype=D, generator=g) * 1.5, 1))
        w = f32(torch.rand(B, dtype=D, generator=g) * 1.5 + 0.25) if c["weights"] else None
        eps = f32(torch.randn(B, E, dtype=D, generator=g))
        p = make_params(c, g)
        out += [(pre + "cfg", [float(c[f]) for f in FIELDS]), (pre + "x", x), (pre + "eps", eps)]
        out.append((pre + ("labels" if c["hard"] else "soft"), labels if c["hard"] else target))
        if w is not None:
            out.append((pre + "weights", w))
        out += [(pre + "p." + name, v) for name, v in p.items()]

        r = forward(c, p, x, target, w, eps)
        r["total"].backward()
        for key in ("task", "cv", "param_div", "output_div", "js", "aux", "phat", "gates",
                    "logy"):
            out.append((pre + key, r[key]))
        out.append((pre + "logphat", torch.log(r["phat"])))
        # gate.noise takes no part without noise (eval): its gradient is 0
        out += [(pre + "g." + name, v.grad if v.grad is not None else torch.zeros_like(v))
                for name, v in p.items()]

        if c["adam_steps"]:
            S = c["adam_steps"]
            q = {k: v.detach().clone().requires_grad_() for k, v in p.items()}
            opt = torch.optim.Adam(list(q.values()), lr=ADAM_LR)
            eps_s = f32(torch.randn(S, B, E, dtype=D, generator=g))
            losses = []
            for s in range(S):
                opt.zero_grad()
                rs = forward(c, q, x, target, w, eps_s[s])
                rs["total"].backward()
                losses.append(rs["total"].item())
                opt.step()
            out += [(pre + "adam_eps", eps_s), (pre + "adam_loss", losses)]
    write_ref(path, out)


if __name__ == "__main__":
    main(sys.argv[1])
