"""Reference for tests/parity_optim.c: five torch.optim steps of every
optimizer on one 1000-element parameter vector, learning-rate schedules and
clip_grad_norm_. Hyper-parameters are rounded to float32 first so the C side
(which stores them as float) uses the very same values."""
import math
import sys

import numpy as np
import torch

from refio import write_ref

N, STEPS = 1000, 5
# kind ids follow moe_optim_kind in include/moe/config.h
SGD, ADAM, ADAMW, RMSPROP, ADAGRAD, ADADELTA, ADAMAX = range(7)


def f32(x):
    return float(np.float32(x))


# name, kind, lr, beta1, beta2, eps, weight_decay, momentum, nesterov, alpha, rho
CASES = [
    ("sgd", SGD, 0.1, 0, 0, 0, 0.01, 0.9, 0, 0, 0),
    ("sgd_nesterov", SGD, 0.05, 0, 0, 0, 0.02, 0.8, 1, 0, 0),
    ("adam", ADAM, 1e-2, 0.9, 0.999, 1e-8, 0.01, 0, 0, 0, 0),
    ("adamw", ADAMW, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0, 0, 0, 0),
    ("rmsprop", RMSPROP, 1e-2, 0, 0, 1e-8, 0.01, 0.9, 0, 0.99, 0),
    ("adagrad", ADAGRAD, 0.1, 0, 0, 1e-10, 0.01, 0, 0, 0, 0),
    ("adadelta", ADADELTA, 1.0, 0, 0, 1e-6, 0.01, 0, 0, 0, 0.9),
    ("adamax", ADAMAX, 2e-3, 0.9, 0.999, 1e-3, 0.01, 0, 0, 0, 0),
]


def make_optimizer(p, kind, lr, b1, b2, eps, wd, mom, nesterov, alpha, rho):
    o = torch.optim
    if kind == SGD:
        return o.SGD([p], lr=lr, momentum=mom, weight_decay=wd, nesterov=bool(nesterov))
    if kind == ADAM:
        return o.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    if kind == ADAMW:
        return o.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    if kind == RMSPROP:
        return o.RMSprop([p], lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=mom)
    if kind == ADAGRAD:
        return o.Adagrad([p], lr=lr, eps=eps, weight_decay=wd)
    if kind == ADADELTA:
        return o.Adadelta([p], lr=lr, rho=rho, eps=eps, weight_decay=wd)
    return o.Adamax([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)


def optimizer_refs(out):
    g = torch.Generator().manual_seed(1234)
    p0 = torch.randn(N, generator=g, dtype=torch.float32)
    grads = torch.randn(STEPS, N, generator=g, dtype=torch.float32)
    grads[:, :10] *= 1e-3  # a few small gradients exercise eps
    out += [("params0", p0), ("grads", grads)]
    for name, kind, *hp in CASES:
        hp = [f32(v) for v in hp]
        p = torch.nn.Parameter(p0.clone())
        opt = make_optimizer(p, kind, *hp)
        out.append((name + "/hp", [float(kind)] + hp))
        for s in range(STEPS):
            p.grad = grads[s].clone()
            opt.step()
            out.append((f"{name}/step{s + 1}", p.detach().clone()))


def lrs_of(sched_fn, base_lr, n):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = sched_fn(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def schedule_refs(out):
    # multistep: base 0.1, milestones 3, 7, 12, gamma 0.5, 20 steps
    lr, gamma = f32(0.1), f32(0.5)
    out.append(("multistep/lr", lrs_of(
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 7, 12], gamma=gamma), lr, 20)))
    # warmup + cosine / linear as a LambdaLR: base 0.01, min 0.001, warmup 5, total 30
    lr, min_lr, warmup, total = f32(0.01), f32(0.001), 5, 30

    def factor(decay):
        def f(step):
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / (total - warmup))
            return (min_lr + (lr - min_lr) * decay(progress)) / lr
        return f

    cosine = factor(lambda q: 0.5 * (1 + math.cos(math.pi * q)))
    linear = factor(lambda q: 1 - q)
    out.append(("cosine/lr", lrs_of(
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, cosine), lr, total + 1)))
    out.append(("linear/lr", lrs_of(
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, linear), lr, total + 1)))


def clip_refs(out):
    g = torch.Generator().manual_seed(99)
    for name, scale, max_norm in [("clip_big", 3.0, 1.0), ("clip_small", 1e-3, 1.0)]:
        grad = torch.randn(N, generator=g, dtype=torch.float32) * scale
        p = torch.nn.Parameter(torch.zeros(N))
        p.grad = grad.clone()
        norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
        out += [(name + "/in", grad), (name + "/max_norm", max_norm),
                (name + "/norm", norm), (name + "/out", p.grad)]


def main():
    out = []
    optimizer_refs(out)
    schedule_refs(out)
    clip_refs(out)
    write_ref(sys.argv[1], out)


if __name__ == "__main__":
    main()
