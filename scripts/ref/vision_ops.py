"""PyTorch references for tests/parity_vision_ops.c: conv2d (groups, stride,
padding), max/avg/global-average pooling and batch norm (training with
running statistics, and eval), forward and backward, in float64. Inputs are
float32 values widened to float64, so the C side (float) starts from
exactly the same numbers. Usage: vision_ops.py OUTPATH"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import write_ref  # noqa: E402

torch.manual_seed(4321)
D = torch.float64
out = []


def leaf(*shape, lo=-1.0, hi=1.0):
    x = torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo
    return x.to(D).requires_grad_()


def put(prefix, **tensors):
    for k, v in tensors.items():
        out.append((prefix + "." + k, v))


def backward(y, prefix):
    dout = torch.randn(y.shape, dtype=torch.float32).to(D)
    y.backward(dout)
    put(prefix, out=y, dout=dout)


# conv2d: dims N, C, H, W, OC, KH, KW, stride, pad, groups, bias
CONVS = [
    (2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1),
    (3, 4, 9, 7, 6, 3, 3, 2, 1, 2, 1),
    (2, 4, 6, 6, 8, 1, 1, 1, 0, 1, 0),
    (2, 6, 8, 8, 6, 3, 3, 1, 1, 6, 1),  # depthwise
    (3, 5, 9, 8, 5, 3, 3, 2, 0, 5, 1),  # depthwise, stride 2, no padding
    (1, 4, 5, 5, 6, 3, 3, 2, 2, 2, 1),  # one image (serial path)
    (4, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1),  # a realistic layer: long sums
]
for i, (N, C, H, W, OC, KH, KW, s, p, g, has_b) in enumerate(CONVS):
    pre = f"conv{i}"
    x, w = leaf(N, C, H, W), leaf(OC, C // g, KH, KW, lo=-0.5, hi=0.5)
    b = leaf(OC) if has_b else None
    backward(F.conv2d(x, w, b, stride=s, padding=p, groups=g), pre)
    put(pre, dims=torch.tensor([N, C, H, W, OC, KH, KW, s, p, g, has_b]), inp=x, w=w,
        dinp=x.grad, dw=w.grad)
    if has_b:
        put(pre, b=b, db=b.grad)
put("conv", count=len(CONVS))

# pooling: dims N, C, H, W, K, stride, pad
POOLS = [
    (2, 3, 8, 8, 2, 2, 0),
    (2, 3, 7, 9, 3, 2, 1),
    (1, 2, 5, 6, 3, 1, 1),
    (2, 2, 7, 7, 2, 2, 1),
]
for i, (N, C, H, W, K, s, p) in enumerate(POOLS):
    x = leaf(N, C, H, W)
    y, idx = F.max_pool2d(x, K, s, p, return_indices=True)
    backward(y, f"maxpool{i}")
    put(f"maxpool{i}", dims=torch.tensor([N, C, H, W, K, s, p]), inp=x, argmax=idx,
        dinp=x.grad)
    x = leaf(N, C, H, W)
    backward(F.avg_pool2d(x, K, s, p), f"avgpool{i}")  # count_include_pad=True
    put(f"avgpool{i}", dims=torch.tensor([N, C, H, W, K, s, p]), inp=x, dinp=x.grad)
put("pool", count=len(POOLS))

x = leaf(3, 4, 5, 7)
backward(F.adaptive_avg_pool2d(x, 1).reshape(3, 4), "gap")
put("gap", dims=torch.tensor([3, 4, 5 * 7]), inp=x, dinp=x.grad)

# batch norm: [N, C] (BatchNorm1d) and [N, C, H, W]; momentum 0.1, eps 1e-5
for name, shape in (("bn1d", (8, 6)), ("bn2d", (4, 5, 3, 4))):
    N, C = shape[0], shape[1]
    S = 1
    for d in shape[2:]:
        S *= d
    w, b = leaf(C, lo=0.5, hi=1.5), leaf(C)
    rm, rv = leaf(C, lo=-0.5, hi=0.5).detach(), leaf(C, lo=0.5, hi=2).detach()
    put(name, dims=torch.tensor([N, C, S]), w=w, b=b, rm0=rm.clone(), rv0=rv.clone())
    # training: batch statistics; running_* move in place
    x = leaf(*shape, lo=-2, hi=3)
    rmt, rvt = rm.clone(), rv.clone()
    backward(F.batch_norm(x, rmt, rvt, w, b, training=True, momentum=0.1, eps=1e-5),
             name + ".train")
    dims = [0] + list(range(2, len(shape)))
    var, mean = torch.var_mean(x.detach(), dim=dims, unbiased=False)
    put(name + ".train", inp=x, rm=rmt, rv=rvt, mean=mean, rstd=1 / torch.sqrt(var + 1e-5),
        dinp=x.grad, dw=w.grad.clone(), db=b.grad.clone())
    w.grad, b.grad = None, None
    # eval: the running statistics given (rm0, rv0), unchanged
    x = leaf(*shape, lo=-2, hi=3)
    backward(F.batch_norm(x, rm, rv, w, b, training=False, momentum=0.1, eps=1e-5),
             name + ".eval")
    put(name + ".eval", inp=x, dinp=x.grad, dw=w.grad, db=b.grad)

write_ref(sys.argv[1], out)
