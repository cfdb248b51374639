"""Reference for tests/parity_cnn_moe.c: a PyTorch twin of seed 000's
cnn_moe family (src/models/cnn_moe*.c) built from nn.Conv2d, nn.BatchNorm2d,
nn.BatchNorm1d, F.max_pool2d and nn.Linear, in float64, dropout and gate
noise off. Two variants: the readme loss with hard labels, and the code
loss with weighted labels (each at its own temperature). For the first
step: the mixture and expert logits, the gates, the cross-entropy, every
auxiliary term, every parameter gradient, the running statistics after the
training forward and the inference-mode logits; then the total losses of 5
torch.optim.AdamW steps and the final tensors. Weights and inputs are
float32 values widened to float64, so the C side (float) starts from the
same numbers. The auxiliary terms are written here from their definitions
in docs/families.md, independently of the C code. Usage: cnn_moe.py OUTPATH"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import write_ref  # noqa: E402

torch.manual_seed(2024)
D = torch.float64
CIN, H, W, CH, E, X, HD, NC = 2, 12, 10, (4, 6), 3, 5, 7, 4
B, STEPS, LR, WD = 8, 5, 1e-2, 0.05
VARIANTS = {  # name: (loss, temperature, weighted labels)
    "readme": ("readme", 2.0, False),
    "code": ("code", 0.7, True),
}
DIVERSITY, BALANCE = 0.1, 0.5


class Stage(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.conv = nn.Conv2d(cin, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn(self.conv(x))), 2, 2)


class Expert(nn.Module):
    def __init__(self, c, x, nc):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.pw = nn.Conv2d(c, x, 1)
        self.bn = nn.BatchNorm2d(x)
        self.fc = nn.Linear(x, nc)

    def forward(self, f):
        h = F.relu(self.bn(self.pw(self.dw(f))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


class Gate(nn.Module):
    def __init__(self, c, hd, e):
        super().__init__()
        self.fc1 = nn.Linear(c, hd)
        self.bn = nn.BatchNorm1d(hd)
        self.fc2 = nn.Linear(hd, e)

    def forward(self, f, T):
        h = F.relu(self.bn(self.fc1(F.adaptive_avg_pool2d(f, 1).flatten(1))))
        return F.softmax(self.fc2(h) / T, dim=1)


class Twin(nn.Module):
    def __init__(self):
        super().__init__()
        cins = (CIN,) + CH[:-1]
        self.features = nn.ModuleList([Stage(a, c) for a, c in zip(cins, CH)])
        self.experts = nn.ModuleList([Expert(CH[-1], X, NC) for _ in range(E)])
        self.gate = Gate(CH[-1], HD, E)

    def forward(self, x, T):
        f = x
        for s in self.features:
            f = s(f)
        L = torch.stack([e(f) for e in self.experts])  # [E, B, NC]
        G = self.gate(f, T)  # [B, E]
        return torch.einsum("be,ebc->bc", G, L), L, G


def aux_terms(kind, G):
    """Unweighted terms and their weighted sum (docs/families.md)."""
    Bn, En = G.shape
    if kind == "readme":
        off = 1 - torch.eye(En, dtype=G.dtype)
        div = (G[:, :, None] * G[:, None, :] * off).sum()  # summed over the batch
        bal = ((1.0 / En - G.mean(0)) ** 2).sum()
        return [div, bal], DIVERSITY * div + BALANCE * bal
    ent = -(G * torch.log(G + 1e-6)).sum(1).mean()
    p = F.softmax(G.sum(0), dim=0)
    kl = (p * torch.log(p * En)).sum()  # KL(p || uniform)
    corr = torch.mean(G.t() @ G)
    ming = F.relu(0.1 - G.min(1)[0]).mean()
    return [ent, kl, corr, ming], DIVERSITY * ent + BALANCE * kl + 0.1 * corr + 0.5 * ming


def task_loss(logits, y, w):
    if w is None:
        return F.cross_entropy(logits, y)
    return (F.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum()


def f32(t):
    return t.float().double()


tensors = [("B", B), ("steps", STEPS), ("lr", LR), ("weight_decay", WD),
           ("dims", torch.tensor([CIN, H, W, CH[0], CH[1], E, X, HD, NC]))]
for vname, (kind, T, weighted) in VARIANTS.items():
    model = Twin().to(D)
    with torch.no_grad():  # every tensor away from its trivial default, in float32 values
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(f32(0.5 + torch.rand(t.shape)))
            elif name.endswith("running_mean") or ".bn." in name and name.endswith("bias"):
                t.copy_(f32(0.2 * torch.randn(t.shape)))
            elif ".bn." in name:
                t.copy_(f32(1 + 0.2 * torch.randn(t.shape)))
            elif name.startswith("gate.fc2"):
                t.copy_(f32(0.5 * torch.randn(t.shape)))  # a gate far from uniform
            else:
                t.copy_(f32(t))
    sd = {n: t for n, t in model.state_dict().items() if not n.endswith("num_batches_tracked")}
    names = list(sd)
    for n in names:
        tensors.append((f"{vname}.init.{n}", sd[n].clone()))
    x = f32(torch.randn(STEPS, B, CIN, H, W))
    y = torch.randint(0, NC, (STEPS, B))
    w = f32(0.2 + torch.rand(STEPS, B)) if weighted else None
    tensors += [(f"{vname}.x", x.reshape(STEPS, B, -1)), (f"{vname}.labels", y),
                (f"{vname}.temperature", T)]
    if weighted:
        tensors.append((f"{vname}.weights", w))
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(params.values(), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=WD)
    losses = []
    for s in range(STEPS):
        model.train()
        logits, L, G = model(x[s], T)
        ce = task_loss(logits, y[s], None if w is None else w[s])
        parts, aux = aux_terms(kind, G)
        loss = ce + aux
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        if s == 0:
            tensors += [(f"{vname}.logits", logits), (f"{vname}.expert_logits", L),
                        (f"{vname}.gates", G), (f"{vname}.ce", ce.item()),
                        (f"{vname}.aux", aux.item()),
                        (f"{vname}.parts", torch.stack(parts))]
            for n, p in params.items():
                tensors.append((f"{vname}.grad0.{n}", p.grad.clone()))
            for n in names:
                if "running_" in n:
                    tensors.append((f"{vname}.running.{n}", sd[n].clone()))
            model.eval()
            with torch.no_grad():
                tensors.append((f"{vname}.eval_logits", model(x[s], T)[0]))
        opt.step()
    tensors.append((f"{vname}.losses", losses))
    for n, t in model.state_dict().items():
        if not n.endswith("num_batches_tracked"):
            tensors.append((f"{vname}.final.{n}", t.clone()))
write_ref(sys.argv[1], tensors)
