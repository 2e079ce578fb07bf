"""A random-weight GPT-2 124M (GPT2Config() defaults: 12 layers, 768-d, 12 heads, context 1024, vocab 50,257) for
bench/generate.ts, in both forms the bench compares: transformers' folder (model.safetensors) and the Optimum ONNX
layout with a KV cache (onnx/model.onnx, exported as ../shared/models/fixtures-src/pretrain_tiny_gpt2.py exports the
fixture). The tokenizer is gpt2-tiny-news's, its vocabulary padded with <extra_i> tokens to 50,257 entries (speed does
not depend on what the tokens mean). Usage: /work/pyenv/bin/python tools/make-gpt2-124m.py OUT"""
import json, os, sys
import torch
import transformers.utils as _tu
import transformers.utils.import_utils as _iu
for _m in (_tu, _iu):  # the machine's torchvision may not match its torch; text models only need it absent
    _m.is_torchvision_available = lambda: False
    _m.is_torchvision_v2_available = lambda: False
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.cache_utils import DynamicCache

out = sys.argv[1]
FIXTURE = os.path.join(os.path.dirname(__file__), "../../shared/models/gpt2-tiny-news")
torch.manual_seed(0)
config = GPT2Config(bos_token_id=0, eos_token_id=0)
model = GPT2LMHeadModel(config).eval()
os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
model.save_pretrained(out)
json.dump({"bos_token_id": 0, "eos_token_id": 0, "do_sample": False}, open(os.path.join(out, "generation_config.json"), "w"))
tok = json.load(open(os.path.join(FIXTURE, "tokenizer.json")))
vocab = tok["model"]["vocab"]
for i in range(len(vocab), config.vocab_size):
    vocab[f"<extra_{i}>"] = i
json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w"))
tc = json.load(open(os.path.join(FIXTURE, "tokenizer_config.json")))
tc["model_max_length"] = 1024
json.dump(tc, open(os.path.join(out, "tokenizer_config.json"), "w"))

L, H, D = config.n_layer, config.n_head, config.n_embd // config.n_head
class WithPast(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache()
        for i in range(L): cache.update(past[2 * i], past[2 * i + 1], i)
        o = self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True)
        pkv = o.past_key_values
        outs = []
        for i in range(L):
            layer = pkv.layers[i] if hasattr(pkv, "layers") else None
            k, v = (layer.keys, layer.values) if layer is not None else pkv[i]
            outs += [k, v]
        return (o.logits, *outs)
pn = [f"past_key_values.{i}.{t}" for i in range(L) for t in ("key", "value")]
on = [f"present.{i}.{t}" for i in range(L) for t in ("key", "value")]
dyn = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
       "position_ids": {0: "batch_size", 1: "sequence_length"}, "logits": {0: "batch_size", 1: "sequence_length"}}
for n in pn: dyn[n] = {0: "batch_size", 2: "past_sequence_length"}
for n in on: dyn[n] = {0: "batch_size", 2: "total_sequence_length"}
past = [torch.zeros(2, H, 3, D) for _ in range(2 * L)]
x = torch.randint(0, 8192, (2, 4)); am = torch.ones(2, 7, dtype=torch.long); pos = torch.arange(3, 7).expand(2, 4)
with torch.no_grad():
    torch.onnx.export(WithPast(model), (x, am, pos, *past), os.path.join(out, "onnx", "model.onnx"), input_names=["input_ids", "attention_mask", "position_ids", *pn],
                      output_names=["logits", *on], dynamic_axes=dyn, opset_version=17, dynamo=False)
print("ok", out)
