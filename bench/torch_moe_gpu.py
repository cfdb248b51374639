# Copied unchanged (below this header) from ../shared/anchors/torch_moe_gpu.py, the
# PyTorch anchor of the GPU MoE layer, so the GPU machine (which cannot see
# ../shared) can run it next to bench_moe_gpu: scripts/gpu/bench_layer.sh.
"""Anchor: PyTorch MoE layer throughput on one GPU (bf16), side by side.
Variants: HF-Mixtral-style loop over experts, torch._grouped_mm (torchtitan style),
and a dense SwiGLU FFN doing the same active FLOPs (the ceiling for the layer)."""
import json, sys, time, torch, torch.nn.functional as F
torch.manual_seed(0)
dev = "cuda"
dt = torch.bfloat16

def timeit(fn, iters=20, warm=5):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); return ts[len(ts)//2]

def route(x, wg, k):
    logits = x @ wg
    p = logits.float().softmax(-1)
    w, idx = p.topk(k, -1)
    w = (w / w.sum(-1, keepdim=True)).to(x.dtype)
    return w, idx

def moe_loop(x, wg, W1, W3, W2, k):
    T, d = x.shape; E = W1.shape[0]
    w, idx = route(x, wg, k)
    out = torch.zeros_like(x)
    mask = F.one_hot(idx, E).permute(2, 1, 0)  # E,k,T
    for e in range(E):
        kk, tok = torch.where(mask[e])
        if tok.numel() == 0: continue
        h = x[tok]
        y = (F.silu(h @ W1[e]) * (h @ W3[e])) @ W2[e]
        out.index_add_(0, tok, y * w[tok, kk, None])
    return out

def moe_grouped(x, wg, W1, W3, W2, k):
    T, d = x.shape; E = W1.shape[0]
    w, idx = route(x, wg, k)
    flat = idx.reshape(-1)
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=E)
    offs = counts.cumsum(0).to(torch.int32)
    tok = order // k
    h = x[tok]
    a = torch._grouped_mm(h, W1, offs=offs)
    b = torch._grouped_mm(h, W3, offs=offs)
    y = torch._grouped_mm(F.silu(a) * b, W2, offs=offs)
    y = y * w.reshape(-1)[order, None]
    out = torch.zeros_like(x)
    out.index_add_(0, tok, y)
    return out

def dense(x, W1, W3, W2):
    return (F.silu(x @ W1) * (x @ W3)) @ W2

res = []
cfgs = [dict(name="mixtral-like", T=16384, d=2048, ff=5632, E=8, k=2),
        dict(name="fine-grained", T=16384, d=1024, ff=1024, E=64, k=8),
        dict(name="16-experts", T=8192, d=1024, ff=4096, E=16, k=2)]
# ceilings
A = torch.randn(8192, 8192, device=dev, dtype=dt); B = torch.randn(8192, 8192, device=dev, dtype=dt)
ms = timeit(lambda: A @ B); peak = 2*8192**3/ms/1e9
X = torch.empty(1<<30, dtype=torch.uint8, device=dev); Y = torch.empty_like(X)
ms2 = timeit(lambda: Y.copy_(X)); bw = 2*(1<<30)/ms2/1e9
print(f"ceilings: bf16 gemm {peak:.0f} TFLOP/s, d2d copy {bw:.0f} GB/s", flush=True)
del A, B, X, Y
for c in cfgs:
    T, d, ff, E, k = c["T"], c["d"], c["ff"], c["E"], c["k"]
    x = torch.randn(T, d, device=dev, dtype=dt, requires_grad=True)
    wg = (torch.randn(d, E, device=dev, dtype=dt) * d**-0.5).requires_grad_()
    W1 = (torch.randn(E, d, ff, device=dev, dtype=dt) * d**-0.5).requires_grad_()
    W3 = (torch.randn(E, d, ff, device=dev, dtype=dt) * d**-0.5).requires_grad_()
    W2 = (torch.randn(E, ff, d, device=dev, dtype=dt) * ff**-0.5).requires_grad_()
    D1 = (torch.randn(d, ff*k, device=dev, dtype=dt) * d**-0.5).requires_grad_()
    D3 = (torch.randn(d, ff*k, device=dev, dtype=dt) * d**-0.5).requires_grad_()
    D2 = (torch.randn(ff*k, d, device=dev, dtype=dt) * ff**-0.5).requires_grad_()
    fl = 6*T*k*d*ff
    gy = torch.randn(T, d, device=dev, dtype=dt)
    with torch.no_grad():
        r1 = moe_loop(x, wg, W1, W3, W2, k); r2 = moe_grouped(x, wg, W1, W3, W2, k)
        err = ((r1.float()-r2.float()).norm()/r1.float().norm()).item()
    row = dict(c, grouped_vs_loop_relerr=err)
    variants = {"loop": lambda: moe_loop(x, wg, W1, W3, W2, k),
                "grouped_mm": lambda: moe_grouped(x, wg, W1, W3, W2, k),
                "dense_same_active": lambda: dense(x, D1, D3, D2)}
    for n, f in variants.items():
        with torch.no_grad(): tf = timeit(f)
        def fb(f=f):
            y = f(); y.backward(gy)
        tb = timeit(fb, iters=10, warm=3)
        row[n] = dict(fwd_ms=round(tf,3), fwd_tflops=round(fl/tf/1e9,1), fwdbwd_ms=round(tb,3),
                      fwdbwd_tflops=round(3*fl/tb/1e9,1), train_tok_per_s=round(T/tb*1e3))
        print(c["name"], n, row[n], flush=True)
    res.append(row)
    del x, W1, W2, W3, D1, D2, D3
    torch.cuda.empty_cache()
import os
out = dict(torch=torch.__version__, gpu=torch.cuda.get_device_name(), bf16_gemm_tflops=round(peak), copy_gbs=round(bw), results=res)
json.dump(out, open(os.path.join(os.environ.get("OUT","."), "torch_moe_gpu.json"), "w"), indent=1)
print(json.dumps(out))
