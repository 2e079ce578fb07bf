"""Reference gradients and one LoRA step for test/generate-finetune.test.ts, from PyTorch + PEFT on gpt2-tiny-news.

A fixed batch of 2 blocks x 32 tokens; loss = transformers' causal LM loss (labels = inputs). Records, for some weights,
the gradient's L2 norm and 24 entries at fixed flat indices (full fine-tuning; the tied embedding gets both uses),
and for LoRA (r 4, alpha 8, c_attn, A set by formula, B zero) the gradient of every B and the B after one AdamW step;
then the same LoRA with lora_dropout 0.1 and its random masks replaced by a formula (element i of the adapter's input
[B, T, in], row-major, dropped when (7919 i + 13) mod 101 < 10, kept ones scaled by 1/0.9): the loss and B's gradients.
Run: /work/pyenv/bin/python tools/generate-finetune-reference.py > test/fixtures/generate/finetune-reference.json
"""
import json, math, sys
import torch
import transformers.utils as _tu
import transformers.utils.import_utils as _iu
# The machine's torchvision may not match its torch (torchvision::nms missing); text models only need it absent.
for _m in (_tu, _iu):
    _m.is_torchvision_available = lambda: False
    _m.is_torchvision_v2_available = lambda: False
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import LoraConfig, get_peft_model

MODEL = "../shared/models/gpt2-tiny-news"
T, B = 32, 2
tok = AutoTokenizer.from_pretrained(MODEL)
text = ("Why did the chicken cross the road? To get to the other side. The computer said no, and the "
        "programmer went home early to think about recursion, which he had already thought about before. "
        "Shares of the company rose on Tuesday after it said profits would beat forecasts for the third quarter in a row.")
ids = tok(text).input_ids[: T * B]
assert len(ids) == T * B, len(ids)
x = torch.tensor(ids).view(B, T)

def sample(t):
    flat = t.detach().reshape(-1)
    idx = [int(i * (flat.numel() - 1) / 23) for i in range(24)]
    return {"indices": idx, "values": [flat[i].item() for i in idx], "norm": flat.norm().item()}

model = AutoModelForCausalLM.from_pretrained(MODEL).float()
model.train()  # dropout is 0 in this config
loss = model(x, labels=x).loss
loss.backward()
names = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
         "transformer.h.1.mlp.c_fc.bias", "transformer.h.3.ln_2.weight", "transformer.ln_f.bias"]
params = dict(model.named_parameters())
full = {"loss": loss.item(), "gradients": {n: sample(params[n].grad) for n in names}}

base = AutoModelForCausalLM.from_pretrained(MODEL).float()
RANK, ALPHA = 4, 8
peft_model = get_peft_model(base, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_A" in name:
            r, n_in = p.shape
            k = torch.arange(r * n_in, dtype=torch.float64).view(r, n_in)
            p.copy_((0.1 * torch.sin(1 + k)).float())
lora_params = [p for n, p in peft_model.named_parameters() if p.requires_grad]
opt = torch.optim.AdamW(lora_params, lr=1e-3, weight_decay=0.01)
loss0 = peft_model(input_ids=x, labels=x).loss
loss0.backward()
grads = {n: sample(p.grad) for n, p in peft_model.named_parameters() if "lora_B" in n}
opt.step()
after = {n: sample(p) for n, p in peft_model.named_parameters() if "lora_B" in n}
with torch.no_grad():
    loss1 = peft_model(input_ids=x, labels=x).loss.item()
lora = {"rank": RANK, "alpha": ALPHA, "lr": 1e-3, "weight_decay": 0.01, "A": "0.1*sin(1 + k), k the row-major flat index",
        "loss": loss0.item(), "loss_after_step": loss1, "B_gradients": grads, "B_after_step": after}

P = 0.1
class FormulaDropout(torch.nn.Module):
    def forward(self, x):
        i = torch.arange(x.numel(), dtype=torch.int64).view(x.shape)
        keep = ((7919 * i + 13) % 101 >= 10).to(x.dtype)
        return x * keep / (1 - P)

base = AutoModelForCausalLM.from_pretrained(MODEL).float()
dropped = get_peft_model(base, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=P, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
with torch.no_grad():
    for name, p in dropped.named_parameters():
        if "lora_A" in name:
            r, n_in = p.shape
            k = torch.arange(r * n_in, dtype=torch.float64).view(r, n_in)
            p.copy_((0.1 * torch.sin(1 + k)).float())
replaced = 0
for module in dropped.modules():
    if hasattr(module, "lora_dropout") and "default" in module.lora_dropout:
        module.lora_dropout["default"] = FormulaDropout()
        replaced += 1
assert replaced == 4, replaced
dropped.train()
loss_d = dropped(input_ids=x, labels=x).loss
loss_d.backward()
lora_dropout = {"p": P, "mask": "element i of [B, T, in] dropped when (7919 i + 13) % 101 < 10", "loss": loss_d.item(),
                "B_gradients": {n: sample(p.grad) for n, p in dropped.named_parameters() if "lora_B" in n}}
json.dump({"made_by": "tools/generate-finetune-reference.py (torch + transformers + peft)", "block_length": T, "ids": ids, "full": full, "lora": lora, "lora_dropout": lora_dropout}, sys.stdout, indent=1)
