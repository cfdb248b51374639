# Copied unchanged from ../shared/anchors/hf_mixtral_gpu.py (the GPU machine cannot
# see ../shared): the Hugging Face peer of bench/bench_model_gpu.c, run beside it by
# scripts/gpu/bench_model.sh.
"""Anchor: Hugging Face transformers Mixtral (random init, ~1.2B params, 16 experts top-2)
on one GPU in bf16: training step tokens/s, prefill tokens/s, decode latency per token."""
import json, os, time, torch
from transformers import MixtralConfig, MixtralForCausalLM
torch.manual_seed(0)
cfg = MixtralConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                    num_attention_heads=16, num_key_value_heads=4, num_local_experts=16, num_experts_per_tok=2,
                    max_position_embeddings=4096, router_aux_loss_coef=0.01, output_router_logits=True)
res = {}
for impl in ("eager", "grouped_mm"):
    try:
        m = MixtralForCausalLM(cfg).to("cuda", torch.bfloat16)
        try: m.set_experts_implementation(impl)
        except Exception as e:
            try: m.config._experts_implementation = impl
            except Exception: pass
        n = sum(p.numel() for p in m.parameters())
        B, S = 8, 1024
        x = torch.randint(0, cfg.vocab_size, (B, S), device="cuda")
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        def step():
            out = m(input_ids=x, labels=x); out.loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        for _ in range(3): step()
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(5): step()
        torch.cuda.synchronize(); tr = (time.perf_counter() - t) / 5
        del opt; torch.cuda.empty_cache(); m.eval(); m.config.output_router_logits = False
        res[impl] = dict(params=n, train_tok_per_s=round(B * S / tr))
        with torch.no_grad():
            for _ in range(2): m(input_ids=x)
            torch.cuda.synchronize(); t = time.perf_counter()
            for _ in range(5): m(input_ids=x)
            torch.cuda.synchronize(); pf = (time.perf_counter() - t) / 5
            dec = {}
            for bs in (1, 32):
                p = torch.randint(0, cfg.vocab_size, (bs, 128), device="cuda"); am = torch.ones_like(p)
                m.generate(p, attention_mask=am, max_new_tokens=8, do_sample=False, min_new_tokens=8, output_router_logits=False)
                torch.cuda.synchronize(); t = time.perf_counter()
                m.generate(p, attention_mask=am, max_new_tokens=128, do_sample=False, min_new_tokens=128, output_router_logits=False)
                torch.cuda.synchronize(); el = time.perf_counter() - t
                dec[f"bs{bs}"] = dict(ms_per_token_step=round(el / 128 * 1e3, 2), tok_per_s=round(bs * 128 / el))
        res[impl].update(prefill_tok_per_s=round(B * S / pf), decode=dec)
        print(impl, res[impl], flush=True)
        del m; torch.cuda.empty_cache()
    except Exception as e:
        res.setdefault(impl, {})['error'] = repr(e)[:300]; print(impl, "failed", repr(e)[:300], flush=True)
import transformers
out = dict(transformers=transformers.__version__, torch=torch.__version__, gpu=torch.cuda.get_device_name(), results=res)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "hf_mixtral_gpu.json"), "w"), indent=1)
print(json.dumps(out))
