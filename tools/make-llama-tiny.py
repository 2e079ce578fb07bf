"""Tiny seeded Llama (GQA, RoPE, RMSNorm, SiLU MLP) exported as a Hugging Face ONNX decoder folder with KV cache.
Usage: /work/pyenv/bin/python tools/make-llama-tiny.py OUT_DIR  (tokenizer copied from ../shared/models/gpt2-tiny-news)"""
import os, shutil, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicCache
out = sys.argv[1]; src = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'models', 'gpt2-tiny-news')
os.makedirs(os.path.join(out, 'onnx'), exist_ok=True)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=8192, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
model = LlamaForCausalLM(cfg).eval()
model.generation_config.do_sample = False
model.config.save_pretrained(out); model.generation_config.save_pretrained(out)
shutil.copy(os.path.join(src, 'tokenizer.json'), out); shutil.copy(os.path.join(src, 'tokenizer_config.json'), out)
L, H, D = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
class WithPast(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache()
        for i in range(L): cache.update(past[2 * i], past[2 * i + 1], i)
        o = self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True)
        outs = []
        for i in range(L):
            layer = o.past_key_values.layers[i]; outs += [layer.keys, layer.values]
        return (o.logits, *outs)
pn = [f'past_key_values.{i}.{t}' for i in range(L) for t in ('key', 'value')]
on = [f'present.{i}.{t}' for i in range(L) for t in ('key', 'value')]
dyn = {'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
       'position_ids': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size', 1: 'sequence_length'}}
for n in pn: dyn[n] = {0: 'batch_size', 2: 'past_sequence_length'}
for n in on: dyn[n] = {0: 'batch_size', 2: 'total_sequence_length'}
past = [torch.zeros(2, H, 3, D) for _ in range(2 * L)]
x = torch.randint(0, 8192, (2, 4)); am = torch.ones(2, 7, dtype=torch.long); pos = torch.arange(3, 7).expand(2, 4)
with torch.no_grad():
    torch.onnx.export(WithPast(model), (x, am, pos, *past), os.path.join(out, 'onnx', 'model.onnx'), input_names=['input_ids', 'attention_mask', 'position_ids', *pn],
                      output_names=['logits', *on], dynamic_axes=dyn, opset_version=17, dynamo=False)
print('exported', out)
