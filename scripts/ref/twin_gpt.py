"""PyTorch twin of libmoe's decoder-only MoE transformer (src/models/gpt*.c).
Same parameter names and layouts as the C parameter table, so weights move
between the two by name. Used by the parity tests and the benchmark."""
import math

import torch
import torch.nn.functional as F


def default_config(**kw):
    c = dict(vocab_size=256, max_seq_len=32, n_layer=2, d_model=32, n_head=4, n_kv_head=4,
             pos="learned", rope_theta=10000.0, norm="layernorm", norm_eps=1e-5,
             tied_embeddings=True, attn_bias=True, moe_every=1, d_ff=64, ffn_act="gelu",
             n_experts=4, top_k=2, moe_d_ff=32, moe_act="swiglu", score="softmax",
             topk_before_softmax=False, renormalize=True, switch_coef=0.01,
             switch_divide_by_k=True, bidirectional=False, post_ln=False, n_classes=0,
             pool="cls")
    c.update(kw)
    return c


def is_moe(c, l):
    return c["moe_every"] > 0 and (l + 1) % c["moe_every"] == 0


def param_shapes(c):
    """(name, shape) in the C table's order."""
    D, hd = c["d_model"], c["d_model"] // c["n_head"]
    Q = (c["n_head"] + 2 * c["n_kv_head"]) * hd
    ln_bias = c["norm"] == "layernorm"
    out = [("model.embed_tokens.weight", (c["vocab_size"], D))]
    if c["pos"] == "learned":
        out.append(("model.embed_positions.weight", (c["max_seq_len"], D)))
    for l in range(c["n_layer"]):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", (D,)))
        if ln_bias:
            out.append((p + "input_layernorm.bias", (D,)))
        out.append((p + "self_attn.qkv_proj.weight", (Q, D)))
        if c["attn_bias"]:
            out.append((p + "self_attn.qkv_proj.bias", (Q,)))
        out.append((p + "self_attn.o_proj.weight", (D, D)))
        if c["attn_bias"]:
            out.append((p + "self_attn.o_proj.bias", (D,)))
        out.append((p + "post_attention_layernorm.weight", (D,)))
        if ln_bias:
            out.append((p + "post_attention_layernorm.bias", (D,)))
        if is_moe(c, l):
            E, Fe = c["n_experts"], c["moe_d_ff"]
            out.append((p + "block_sparse_moe.gate.weight", (E, D)))
            out.append((p + "block_sparse_moe.experts.w1", (E, Fe, D)))
            if c["moe_act"] == "swiglu":
                out.append((p + "block_sparse_moe.experts.w3", (E, Fe, D)))
            out.append((p + "block_sparse_moe.experts.w2", (E, D, Fe)))
        else:
            out.append((p + "mlp.w1.weight", (c["d_ff"], D)))
            if c["ffn_act"] == "swiglu":
                out.append((p + "mlp.w3.weight", (c["d_ff"], D)))
            out.append((p + "mlp.w2.weight", (D, c["d_ff"])))
    out.append(("model.norm.weight", (D,)))
    if ln_bias:
        out.append(("model.norm.bias", (D,)))
    if not c["tied_embeddings"]:
        out.append(("lm_head.weight", (c["vocab_size"], D)))
    if c["n_classes"] > 0:
        out.append(("classifier.weight", (c["n_classes"], D)))
        out.append(("classifier.bias", (c["n_classes"],)))
    return out


def init_params(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in param_shapes(c):
        if "norm." in name:
            t = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
            if name.endswith("bias"):
                t = 0.1 * torch.randn(shape, generator=g)  # nonzero so biases are exercised
        elif name.endswith("bias"):
            t = 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.08 * torch.randn(shape, generator=g)
        params[name] = t.double().requires_grad_(True)
    return params


def act(kind, x):
    return {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}[kind](x)


def norm(c, x, w, b):
    if c["norm"] == "rmsnorm":
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + c["norm_eps"]) * w
    return F.layer_norm(x, (x.shape[-1],), w, b, c["norm_eps"])


def rope(x, theta):
    """x [B, T, H, hd], rotate-half convention."""
    T, hd = x.shape[1], x.shape[3]
    freq = theta ** (-torch.arange(0, hd // 2, dtype=x.dtype) * 2 / hd)
    ang = torch.arange(T, dtype=x.dtype)[:, None] * freq[None, :]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def moe_ffn(c, P, p, x):
    """x [N, D] -> (out [N, D], aux)."""
    E, k = c["n_experts"], c["top_k"]
    logits = x @ P[p + "gate.weight"].T
    probs = logits.softmax(-1)
    if c["topk_before_softmax"]:
        lv, idx = logits.topk(k, -1)
        w = lv.softmax(-1)
    else:
        w, idx = probs.topk(k, -1)
        if c["renormalize"]:
            w = w / w.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    w1, w2 = P[p + "experts.w1"], P[p + "experts.w2"]
    for e in range(E):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0:
            continue
        h = x[tok]
        if c["moe_act"] == "swiglu":
            a = F.silu(h @ w1[e].T) * (h @ P[p + "experts.w3"][e].T)
        else:
            a = act(c["moe_act"], h @ w1[e].T)
        out.index_add_(0, tok, (a @ w2[e].T) * w[tok, slot, None])
    f = F.one_hot(idx, E).to(x.dtype).sum(1).mean(0)
    if c["switch_divide_by_k"]:
        f = f / k
    aux = c["switch_coef"] * E * (f * probs.mean(0)).sum()
    return out, aux


def sinusoid(T, D, dtype):
    """Vaswani et al.: sin at even, cos at odd columns, pairs share 10000^(-2j/D)."""
    pos = torch.arange(T, dtype=dtype)[:, None]
    j = torch.arange(0, D, 2, dtype=dtype)
    ang = pos * 10000.0 ** (-j / D)
    out = torch.zeros(T, D, dtype=dtype)
    out[:, 0::2], out[:, 1::2] = ang.sin(), ang.cos()
    return out


def forward(c, P, tokens, targets, labels=None, pad=None):
    """pad [B, T] bool (True = real token) or None. Returns (task loss, aux)
    where the task loss is the LM cross-entropy (targets not None) plus the
    classifier's (labels not None)."""
    B, T = tokens.shape
    D, H, KVH = c["d_model"], c["n_head"], c["n_kv_head"]
    hd = D // H
    x = P["model.embed_tokens.weight"][tokens]
    if c["pos"] == "learned":
        x = x + P["model.embed_positions.weight"][:T]
    elif c["pos"] == "sinusoidal":
        x = x + sinusoid(T, D, x.dtype)
    aux = 0.0
    if c["bidirectional"]:
        mask = torch.zeros(B, 1, T, T, dtype=torch.bool)
        if pad is not None:  # padded keys are never attended
            mask = mask | ~pad[:, None, None, :]
    else:
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    post = c["post_ln"]
    for l in range(c["n_layer"]):
        p = f"model.layers.{l}."
        ln1 = (P[p + "input_layernorm.weight"], P.get(p + "input_layernorm.bias"))
        ln2 = (P[p + "post_attention_layernorm.weight"], P.get(p + "post_attention_layernorm.bias"))
        h = x if post else norm(c, x, *ln1)
        qkv = h @ P[p + "self_attn.qkv_proj.weight"].T
        if c["attn_bias"]:
            qkv = qkv + P[p + "self_attn.qkv_proj.bias"]
        q = qkv[..., : H * hd].view(B, T, H, hd)
        kk = qkv[..., H * hd: (H + KVH) * hd].view(B, T, KVH, hd)
        v = qkv[..., (H + KVH) * hd:].view(B, T, KVH, hd)
        if c["pos"] == "rope":
            q, kk = rope(q, c["rope_theta"]), rope(kk, c["rope_theta"])
        rep = H // KVH
        q = q.transpose(1, 2)
        kk = kk.repeat_interleave(rep, 2).transpose(1, 2)
        v = v.repeat_interleave(rep, 2).transpose(1, 2)
        att = (q @ kk.transpose(-2, -1)) / math.sqrt(hd)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        a = (att @ v).transpose(1, 2).reshape(B, T, D)
        a = a @ P[p + "self_attn.o_proj.weight"].T
        if c["attn_bias"]:
            a = a + P[p + "self_attn.o_proj.bias"]
        x = x + a
        if post:
            x = norm(c, x, *ln1)
        h = x if post else norm(c, x, *ln2)
        if is_moe(c, l):
            flat = h.reshape(B * T, D)
            if pad is not None:  # the MoE layer routes the real tokens only
                rows = pad.reshape(-1).nonzero().squeeze(1)
                yv, al = moe_ffn(c, P, p + "block_sparse_moe.", flat[rows])
                y = torch.zeros_like(flat).index_add(0, rows, yv).view(B, T, D)
            else:
                y, al = moe_ffn(c, P, p + "block_sparse_moe.", flat)
                y = y.view(B, T, D)
            aux = aux + al
        else:
            if c["ffn_act"] == "swiglu":
                y = F.silu(h @ P[p + "mlp.w1.weight"].T) * (h @ P[p + "mlp.w3.weight"].T)
            else:
                y = act(c["ffn_act"], h @ P[p + "mlp.w1.weight"].T)
            y = y @ P[p + "mlp.w2.weight"].T
        x = x + y
        if post:
            x = norm(c, x, *ln2)
    x = norm(c, x, P["model.norm.weight"], P.get("model.norm.bias"))
    loss = 0.0
    if targets is not None:
        head = P["model.embed_tokens.weight"] if c["tied_embeddings"] else P["lm_head.weight"]
        logits = x @ head.T
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    if labels is not None:
        if c["pool"] == "mean":
            w = pad.to(x.dtype)[..., None] if pad is not None else torch.ones(B, T, 1, dtype=x.dtype)
            pooled = (x * w).sum(1) / w.sum(1)
        else:
            pooled = x[:, 0]
        cls = pooled @ P["classifier.weight"].T + P["classifier.bias"]
        loss = loss + F.cross_entropy(cls, labels, ignore_index=-1)
    return loss, aux
