"""PyTorch side of bench/generate.ts on the same random GPT-2 124M: decode tokens/s at batch 1 with the KV cache
(eager), one LoRA step (PEFT, r 8, c_attn) and one full fine-tuning step (AdamW), batch 8 x 128. Prints JSON.
Usage: python bench/torch_generate.py MODEL_DIR THREADS PROMPT_TOKENS NEW_TOKENS"""
import json, sys, time
import torch
import transformers.utils as _tu
import transformers.utils.import_utils as _iu
for _m in (_tu, _iu):
    _m.is_torchvision_available = lambda: False
    _m.is_torchvision_v2_available = lambda: False
from transformers import GPT2LMHeadModel
from peft import LoraConfig, get_peft_model

d, threads, prompt_len, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = GPT2LMHeadModel.from_pretrained(d).eval()
prompt = torch.randint(0, 8192, (1, prompt_len))

def decode():
    with torch.no_grad():
        out = model(prompt, use_cache=True)
        past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(new - 1):
            out = model(tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
decode()
times = []
for _ in range(3):
    t = time.perf_counter(); decode(); times.append(time.perf_counter() - t)
decode_s = sorted(times)[1]

x = torch.randint(0, 50257, (8, 128))
def steps(m, params, n=3):
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ts = []
    for _ in range(n + 1):
        t = time.perf_counter()
        loss = m(x, labels=x).loss; opt.zero_grad(); loss.backward(); opt.step()
        ts.append(time.perf_counter() - t)
    return sorted(ts[1:])[len(ts[1:]) // 2]
full = GPT2LMHeadModel.from_pretrained(d); full.train()
full_s = steps(full, full.parameters())
del full
base = GPT2LMHeadModel.from_pretrained(d); base.train()
lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
lora_s = steps(lora, [p for p in lora.parameters() if p.requires_grad])
print(json.dumps({"decode_seconds": decode_s, "new_tokens": new, "full_step_seconds": full_s, "lora_step_seconds": lora_s}))
