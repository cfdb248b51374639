"""PyTorch references for tests/parity_ops.c: every op's inputs, outputs and
gradients in float64 (the C side runs in float). Usage: ops.py OUTPATH"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import write_ref  # noqa: E402

torch.manual_seed(1234)
D = torch.float64
out = []


def leaf(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=D) * (hi - lo) + lo).requires_grad_()


def put(prefix, **tensors):
    for k, v in tensors.items():
        out.append((prefix + "." + k, v))


def backward(y, prefix):
    dout = torch.randn(y.shape, dtype=D)
    y.backward(dout)
    put(prefix, out=y, dout=dout)


# linear
x, w, b = leaf(6, 16), leaf(12, 16), leaf(12)
backward(F.linear(x, w, b), "linear")
put("linear", inp=x, w=w, b=b, dinp=x.grad, dw=w.grad, db=b.grad)

# embedding (repeated ids accumulate)
table = leaf(10, 8)
ids = torch.tensor([3, 1, 3, 9, 0, 3, 7, 1, 2, 5, 3, 8])
backward(F.embedding(ids, table), "embedding")
put("embedding", table=table, ids=ids, dtable=table.grad)

# layernorm
x, w, b = leaf(6, 16, lo=-2, hi=2), leaf(16, lo=0.5, hi=1.5), leaf(16)
backward(F.layer_norm(x, (16,), w, b, eps=1e-5), "layernorm")
put("layernorm", inp=x, w=w, b=b, dinp=x.grad, dw=w.grad, db=b.grad)

# rmsnorm (Llama)
x, w = leaf(6, 16, lo=-2, hi=2), leaf(16, lo=0.5, hi=1.5)
backward(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w, "rmsnorm")
put("rmsnorm", inp=x, w=w, dinp=x.grad, dw=w.grad)


# rope, HF rotate-half, on the first H*hd columns of rows 4 elements wider
def rope(x, pos0, theta):
    B, T, H, hd = x.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=D) / hd))
    freqs = torch.arange(pos0, pos0 + T, dtype=D)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


B, T, H, hd, extra = 2, 6, 3, 8, 4
x = leaf(B, T, H * hd + extra)
y = torch.cat([rope(x[..., : H * hd].reshape(B, T, H, hd), 3, 10000.0).reshape(B, T, H * hd),
               x[..., H * hd:]], -1)
backward(y, "rope")
put("rope", inp=x, dinp=x.grad, dims=torch.tensor([B, T, H, hd, H * hd + extra, 3]))


# attention: q [B,T,H,hd], k/v [B,T,KVH,hd]; head h reads kv head h // (H/KVH)
def attention(q, k, v, causal, pad):
    B, T, H, hd = q.shape
    g = H // k.shape[2]
    k, v = k.repeat_interleave(g, 2), v.repeat_interleave(g, 2)
    s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        mask = mask & torch.ones(T, T, dtype=torch.bool).tril()
    if pad is not None:
        mask = mask & pad.bool()[:, None, None, :]
    p = torch.softmax(s.masked_fill(~mask, float("-inf")), -1)
    return torch.einsum("bhts,bshd->bthd", p, v), p


def attention_case(prefix, B, T, H, KVH, hd, causal, pad):
    q, k, v = leaf(B, T, H, hd), leaf(B, T, KVH, hd), leaf(B, T, KVH, hd)
    o, p = attention(q, k, v, causal, pad)
    backward(o, prefix)
    put(prefix, q=q, k=k, v=v, att=p, dq=q.grad, dk=k.grad, dv=v.grad,
        dims=torch.tensor([B, T, H, KVH, hd, causal]))
    if pad is not None:
        put(prefix, pad=pad)


attention_case("attn_causal_gqa", 2, 7, 4, 2, 8, 1, None)
attention_case("attn_pad", 2, 6, 2, 2, 8, 0,
               torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]))

# activations
x = leaf(50, lo=-4, hi=4)
backward(F.gelu(x), "gelu")
put("gelu", inp=x, dinp=x.grad)
x = leaf(50, lo=-6, hi=6)
backward(F.silu(x), "silu")
put("silu", inp=x, dinp=x.grad)
a, b = leaf(50, lo=-4, hi=4), leaf(50, lo=-2, hi=2)
backward(F.silu(a) * b, "swiglu")
put("swiglu", a=a, b=b, da=a.grad, db=b.grad)

# cross-entropy, hard labels; -1 marks ignored rows
logits = leaf(8, 11, lo=-4, hi=4)
targets = torch.tensor([3, -1, 0, 10, 5, -1, 7, 2])
loss = F.cross_entropy(logits, targets, ignore_index=-1)
loss.backward()
put("ce", logits=logits, targets=targets, loss=loss, dlogits=logits.grad)

# cross-entropy, soft labels with row weights
logits = leaf(8, 11, lo=-4, hi=4)
tp = torch.softmax(torch.randn(8, 11, dtype=D) * 2, -1)
wts = torch.rand(8, dtype=D) * 2
loss = (wts * -(tp * F.log_softmax(logits, -1)).sum(-1)).sum() / wts.sum()
loss.backward()
put("ce_soft", logits=logits, tp=tp, w=wts, loss=loss, dlogits=logits.grad)

write_ref(sys.argv[1], out)
