"""Reference for tests/parity_deepmoe.c: a PyTorch twin of libmoe's DeepMoE
family (src/models/deepmoe*.c), float64, with the C parameter table's names
and layouts. Per variant (VGG and ResNet, gated with elementwise or matrix
L1, and ungated): PyTorch-default initial weights, the first training
step's logits, losses and every parameter gradient, the running statistics
after it, inference logits, 5 AdamW losses and the final weights; and one
freeze-phase step (CE only, e detached) from the same initial weights.
Usage: deepmoe.py OUTPATH"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import write_ref  # noqa: E402

D = torch.float64
EMB_WIDTHS = (32, 64)  # then emb_dim
B, CIN, HW, NCLS, STEPS = 8, 1, 28, 10, 5
ADAMW = dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

VARIANTS = {
    # name: arch, gated, l1 ("elementwise" | "matrix"), channels, emb_dim, lambda, mu
    "vgg": ("vgg", 1, "elementwise", (4, 6, 8), 16, 0.05, 0.5),
    "resnet": ("resnet", 1, "matrix", (4, 6, 8), 16, 0.05, 0.5),
    "resnet_elem": ("resnet", 1, "elementwise", (5, 6), 12, 0.1, 1.0),
    "vgg_plain": ("vgg", 0, "elementwise", (4, 6, 8), 16, 0.05, 0.5),
}


def units(c):
    """(prefix, conv, bn, cin, cout, k, stride, relu, gated) in table order,
    with the block structure for ResNet."""
    arch, gated, _, ch, _, _, _ = c
    out, blocks, cin = [], [], CIN
    if arch == "vgg":
        for s, w in enumerate(ch):
            for j in range(2):
                out.append((f"features.{2 * s + j}", "conv", "bn", cin, w, 3, 1, True, gated))
                cin = w
        return out, blocks
    out.append(("stem", "conv", "bn", cin, ch[0], 3, 1, True, gated))
    cin = ch[0]
    for s, w in enumerate(ch):
        stride = 1 if s == 0 else 2
        p = f"layers.{s}"
        u1 = len(out)
        out.append((p, "conv1", "bn1", cin, w, 3, stride, True, gated))
        out.append((p, "conv2", "bn2", w, w, 3, 1, False, gated))
        sc = -1
        if stride != 1 or cin != w:
            sc = len(out)
            out.append((p, "shortcut.0", "shortcut.1", cin, w, 1, stride, False, False))
        blocks.append((u1, u1 + 1, sc))
        cin = w
    return out, blocks


def init_params(c, seed):
    """PyTorch's default initialisation through the real modules, in the C
    table's order: embedding, units, gates, classifier."""
    torch.manual_seed(seed)
    arch, gated, _, ch, emb, _, _ = c
    P = {}
    if gated:
        cin = CIN
        for i, w in enumerate(EMB_WIDTHS + (emb,)):
            conv = nn.Conv2d(cin, w, 3, stride=2, padding=1)
            P[f"embedding.conv{i + 1}.weight"] = conv.weight
            P[f"embedding.conv{i + 1}.bias"] = conv.bias
            cin = w
        head = nn.Linear(emb, NCLS)
        P["embedding.head.weight"], P["embedding.head.bias"] = head.weight, head.bias
    us, _ = units(c)
    for (p, cv, bn, cin, cout, k, stride, relu, g) in us:
        P[f"{p}.{cv}.weight"] = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False).weight
        m = nn.BatchNorm2d(cout)
        P[f"{p}.{bn}.weight"], P[f"{p}.{bn}.bias"] = m.weight, m.bias
        P[f"{p}.{bn}.running_mean"], P[f"{p}.{bn}.running_var"] = m.running_mean, m.running_var
    gated_units = [u for u in us if u[8]]
    for l, u in enumerate(gated_units):
        P[f"gates.{l}.weight"] = nn.Linear(emb, u[4], bias=False).weight
    lin = nn.Linear(ch[-1], NCLS)
    P["classifier.weight"], P["classifier.bias"] = lin.weight, lin.bias
    out = {}
    for n, t in P.items():
        t = t.detach().to(D).clone()
        out[n] = t if "running" in n else t.requires_grad_()
    return out


def forward(c, P, x, y, training, frozen=False):
    """(logits, ce, gate_l1, emb_ce, aux, gates). F.batch_norm updates the
    running statistics in P in place when training (so what is recorded
    from P is cloned: write_ref runs at the end)."""
    arch, gated, l1, ch, emb, lam, mu = c
    us, blocks = units(c)
    gates, head = [], None
    if gated:
        h = x
        for i in range(3):
            h = F.gelu(F.conv2d(h, P[f"embedding.conv{i + 1}.weight"],
                                P[f"embedding.conv{i + 1}.bias"], stride=2, padding=1))
        e = h.mean((2, 3))
        if frozen:
            e = e.detach()
        head = F.linear(e, P["embedding.head.weight"], P["embedding.head.bias"])
        gates = [F.relu(F.linear(e, P[f"gates.{l}.weight"]))
                 for l in range(sum(1 for u in us if u[8]))]
    gate_of, n = {}, 0
    for i, u in enumerate(us):
        if u[8]:
            gate_of[i] = n
            n += 1

    def unit(i, h):
        p, cv, bn, cin, cout, k, stride, relu, g = us[i]
        z = F.conv2d(h, P[f"{p}.{cv}.weight"], None, stride, k // 2)
        z = F.batch_norm(z, P[f"{p}.{bn}.running_mean"], P[f"{p}.{bn}.running_var"],
                         P[f"{p}.{bn}.weight"], P[f"{p}.{bn}.bias"], training, 0.1, 1e-5)
        if relu:
            z = F.relu(z)
        if i in gate_of:  # gate after the ReLU: y = g * relu(bn)
            z = z * gates[gate_of[i]][:, :, None, None]
        return z

    h = x
    if arch == "vgg":
        for s in range(len(ch)):
            h = unit(2 * s + 1, unit(2 * s, h))
            h = F.max_pool2d(h, 2, 2)
    else:
        h = unit(0, h)
        for (u1, u2, sc) in blocks:
            r = unit(sc, h) if sc >= 0 else h
            h = F.relu(unit(u2, unit(u1, h)) + r)
    logits = F.linear(h.mean((2, 3)), P["classifier.weight"], P["classifier.bias"])
    ce = F.cross_entropy(logits, y)
    zero = torch.zeros((), dtype=D)
    gl1, ece, aux = zero, zero, zero
    if gated:
        if l1 == "elementwise":
            gl1 = sum(g.abs().sum(1).mean() for g in gates)
        else:
            gl1 = sum(torch.linalg.norm(g, 1) for g in gates)
        ece = F.cross_entropy(head, y)
        if not frozen:
            aux = lam * gl1 + mu * ece
    return logits, ce, gl1, ece, aux, gates


def main():
    torch.manual_seed(0)
    tensors = [("variants", len(VARIANTS)), ("steps", STEPS), ("lr", ADAMW["lr"]),
               ("weight_decay", ADAMW["weight_decay"])]
    for vi, (vname, c) in enumerate(VARIANTS.items()):
        arch, gated, l1, ch, emb, lam, mu = c
        cfg = [arch == "resnet", gated, l1 == "matrix", emb, CIN, HW, HW, NCLS, B]
        tensors += [(f"{vname}.cfg", cfg), (f"{vname}.channels", list(ch)),
                    (f"{vname}.lambda", lam), (f"{vname}.mu", mu)]
        # Fashion-MNIST-like images in [0, 1), float32 values widened
        x = torch.rand(STEPS, B, CIN, HW, HW, dtype=torch.float32).to(D)
        y = torch.randint(0, NCLS, (STEPS, B))
        tensors += [(f"{vname}.x", x), (f"{vname}.y", y)]
        P = init_params(c, seed=100 + vi)
        names = list(P)
        params = [n for n in names if "running" not in n]
        for n in names:
            tensors.append((f"{vname}.init.{n}", P[n].detach().clone()))

        # the freeze phase, from a copy of the initial weights
        Q = {n: (t.detach().clone().requires_grad_() if "running" not in n
                 else t.clone()) for n, t in P.items()}
        _, ce, _, _, aux, _ = forward(c, Q, x[0], y[0], True, frozen=True)
        (ce + aux).backward()
        tensors.append((f"{vname}.freeze.loss", ce + aux))
        for n in params:
            g = Q[n].grad
            tensors.append((f"{vname}.freeze.grad.{n}",
                            torch.zeros_like(Q[n]) if g is None else g))

        opt = torch.optim.AdamW([P[n] for n in params], **ADAMW)
        losses = []
        for s in range(STEPS):
            logits, ce, gl1, ece, aux, gates = forward(c, P, x[s], y[s], True)
            loss = ce + aux
            opt.zero_grad()
            loss.backward()
            if s == 0:
                tensors += [(f"{vname}.logits0", logits), (f"{vname}.ce0", ce),
                            (f"{vname}.gate_l1_0", gl1), (f"{vname}.emb_ce0", ece),
                            (f"{vname}.aux0", aux)]
                for l, g in enumerate(gates):
                    tensors.append((f"{vname}.gates0.{l}", g))
                for n in params:
                    tensors.append((f"{vname}.grad0.{n}", P[n].grad.clone()))
                for n in names:
                    if "running" in n:
                        tensors.append((f"{vname}.stats0.{n}", P[n].clone()))
                with torch.no_grad():
                    ev = forward(c, P, x[0], y[0], False)[0]
                tensors.append((f"{vname}.eval_logits0", ev))
            opt.step()
            losses.append(loss.item())
        tensors.append((f"{vname}.losses", losses))
        for n in names:
            tensors.append((f"{vname}.final.{n}", P[n]))
    write_ref(sys.argv[1], tensors)


if __name__ == "__main__":
    main()
