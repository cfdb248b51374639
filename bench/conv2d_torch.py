#!/usr/bin/python3
"""The PyTorch peer of bench/conv2d_step.c: F.conv2d forward + backward
(input, weight and bias gradients) on the same shape, 2 threads, median and
best of 30 runs after 3 warm-ups, one JSON line.
Usage: conv2d_torch.py [N,C,H,W,OC,K,stride,pad,groups]"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
shape = sys.argv[1] if len(sys.argv) > 1 else "64,32,14,14,64,3,1,1,1"
N, C, H, W, OC, K, s, p, g = (int(v) for v in shape.split(","))
x = (torch.rand(N, C, H, W) - 0.5).requires_grad_()
w = (torch.rand(OC, C // g, K, K) - 0.5).requires_grad_()
b = (torch.rand(OC) - 0.5).requires_grad_()
gy = torch.rand(N, OC, (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1) - 0.5
tf, tb, tt = [], [], []
for r in range(-3, 30):
    x.grad = w.grad = b.grad = None
    t0 = time.perf_counter()
    y = F.conv2d(x, w, b, stride=s, padding=p, groups=g)
    t1 = time.perf_counter()
    y.backward(gy)
    t2 = time.perf_counter()
    if r >= 0:
        tf.append(t1 - t0)
        tb.append(t2 - t1)
        tt.append(t2 - t0)
m = statistics.median
print(json.dumps({"impl": "torch " + torch.__version__, "shape": shape, "fwd_ms": round(m(tf) * 1e3, 3),
                  "bwd_ms": round(m(tb) * 1e3, 3), "step_ms": round(m(tt) * 1e3, 3),
                  "best_ms": round(min(tt) * 1e3, 3)}))
