"""The llama-tiny fixture (test/fixtures/generate/llama-tiny/) and its PyTorch reference, for test/generate-llama.test.ts.

A Llama-style decoder as SmolLM / Qwen build them (RoPE, RMSNorm, SiLU-gated MLP, grouped-query attention: 4 query heads
sharing 2 KV heads), small enough to commit: a byte-level BPE tokenizer of 512 tokens trained with `tokenizers` on the
first 6,000 AG News articles (../shared/data/text/agnews/dev.tsv), hidden 64, 2 layers, tied embeddings, then 400 seeded
AdamW steps of 16 x 64 tokens on that text (joined by newlines) so that greedy output is not one repeated token. Exported as a Hugging Face ONNX
decoder folder with a KV cache (the gpt2-tiny-news layout: torch.onnx.export, dynamo=False, opset 17).

The reference (llama-tiny-reference.json), all from transformers / PEFT on the same weights: greedy tokens one prompt at
a time and as a left-padded batch; sliding-window perplexity on AG News test articles; for full fine-tuning the loss and,
for some parameters, the gradient's norm and 24 entries at fixed flat indices (PyTorch's layout, [out, in]); for LoRA
(r 4, alpha 8, q_proj + v_proj, A = 0.1 sin(1 + k), B zero) the B gradients, B after one AdamW step, the loss after it,
and the keys PEFT saves the adapter under.
Run: /work/pyenv/bin/python tools/make-llama-tiny.py   (from the repository root; writes both)
"""
import json, math, os, sys
import torch
import transformers.utils as _tu
import transformers.utils.import_utils as _iu
# The machine's torchvision may not match its torch (torchvision::nms missing); text models only need it absent.
for _m in (_tu, _iu):
    _m.is_torchvision_available = lambda: False
    _m.is_torchvision_v2_available = lambda: False
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.cache_utils import DynamicCache
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'generate', 'llama-tiny')
REF = os.path.join(ROOT, 'test', 'fixtures', 'generate', 'llama-tiny-reference.json')
NEWS = os.path.join(ROOT, '..', 'shared', 'data', 'text', 'agnews')
os.makedirs(os.path.join(OUT, 'onnx'), exist_ok=True)
torch.manual_seed(0)

def articles(name, n):
    lines = open(os.path.join(NEWS, name), encoding='utf8').read().split('\n')
    return [l.split('\t')[0].replace(' #39;', "'") for l in lines if l][:n]

train_text = articles('dev.tsv', 6000)
EOT = '<|endoftext|>'
tk = Tokenizer(models.BPE())
tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tk.decoder = decoders.ByteLevel()
tk.train_from_iterator(train_text, trainers.BpeTrainer(vocab_size=512, special_tokens=[EOT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
assert tk.token_to_id(EOT) == 0
tk.save(os.path.join(OUT, 'tokenizer.json'))
with open(os.path.join(OUT, 'tokenizer_config.json'), 'w') as f:
    json.dump({'bos_token': EOT, 'eos_token': EOT, 'unk_token': EOT, 'model_max_length': 256, 'tokenizer_class': 'GPT2Tokenizer', 'add_prefix_space': False}, f, indent=2)
tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=EOT, eos_token=EOT, unk_token=EOT)

cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0, rms_norm_eps=1e-5)
model = LlamaForCausalLM(cfg)

# Pre-training: the articles as one stream separated by newlines (EOT-separated short articles taught it to stop after
# three tokens), random 64-token blocks.
stream = torch.tensor(tk.encode('\n'.join(train_text)).ids)
g = torch.Generator().manual_seed(0)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
STEPS = 400
model.train()
for step in range(STEPS):
    for group in opt.param_groups: group['lr'] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / STEPS))
    starts = torch.randint(0, len(stream) - 65, (16,), generator=g)
    batch = torch.stack([stream[s:s + 64] for s in starts])
    loss = model(batch, labels=batch).loss
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 100 == 0 or step == STEPS - 1: print(f'step {step} loss {loss.item():.3f}', file=sys.stderr)
model.eval()
model.generation_config.do_sample = False
model.config.save_pretrained(OUT); model.generation_config.save_pretrained(OUT)

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
x = torch.randint(0, 512, (2, 4)); am = torch.ones(2, 7, dtype=torch.long); pos = torch.arange(3, 7).expand(2, 4)
with torch.no_grad():
    torch.onnx.export(WithPast(model), (x, am, pos, *past), os.path.join(OUT, 'onnx', 'model.onnx'), input_names=['input_ids', 'attention_mask', 'position_ids', *pn],
                      output_names=['logits', *on], dynamic_axes=dyn, opset_version=17, dynamo=False)

# --- the reference ---
PROMPTS = ['The stock market', 'Scientists said on Tuesday that', 'Oil prices', 'The company']
NEW = 16

def strip_eos(row):
    return row[: row.index(0)] if 0 in row else row

def greedy_single(prompt):
    ids = tok(prompt, return_tensors='pt').input_ids
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    return strip_eos(out[0, ids.shape[1]:].tolist())

def greedy_batch(prompts):
    tok.padding_side = 'left'; tok.pad_token = EOT
    enc = tok(prompts, return_tensors='pt', padding=True)
    out = model.generate(**enc, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    return [strip_eos(row) for row in out[:, enc.input_ids.shape[1]:].tolist()]

held_out = '\n'.join(articles('test.tsv', 12))

def perplexity(text, max_length, stride):
    ids = tok(text, return_tensors='pt').input_ids
    n = ids.size(1)
    nll_sum, count, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        trg_len = end - prev_end
        input_ids = ids[:, begin:end]
        target = input_ids.clone()
        target[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=target).loss
        valid = (target[:, 1:] != -100).sum().item()
        nll_sum += loss.item() * valid; count += valid; prev_end = end
        if end == n: break
    return math.exp(nll_sum / count), count, n

ppl_a, count_a, n_tokens = perplexity(held_out, 128, 64)
ppl_b, count_b, _ = perplexity(held_out, 64, 64)
with torch.no_grad():
    greedy = [{'prompt': p, 'prompt_ids': tok(p).input_ids, 'tokens': greedy_single(p)} for p in PROMPTS]
    batch_tokens = greedy_batch(PROMPTS)

def sample(t):
    flat = t.detach().reshape(-1)
    idx = [int(i * (flat.numel() - 1) / 23) for i in range(24)]
    return {'shape': list(t.shape), 'indices': idx, 'values': [flat[i].item() for i in idx], 'norm': flat.norm().item()}

T, B = 32, 2
ids = tok(held_out).input_ids[: T * B]
xb = torch.tensor(ids).view(B, T)
state = {k: v.clone() for k, v in model.state_dict().items()}
model.train()
model.zero_grad()
loss = model(xb, labels=xb).loss
loss.backward()
names = ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.1.self_attn.v_proj.weight',
         'model.layers.1.self_attn.o_proj.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'model.layers.0.input_layernorm.weight', 'model.norm.weight']
params = dict(model.named_parameters())
full = {'loss': loss.item(), 'gradients': {n: sample(params[n].grad) for n in names}}

RANK, ALPHA = 4, 8
base = LlamaForCausalLM(cfg); base.load_state_dict(state); base.train()
peft_model = get_peft_model(base, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=['q_proj', 'v_proj'], task_type='CAUSAL_LM'))
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if 'lora_A' in name:
            r, n_in = p.shape
            k = torch.arange(r * n_in, dtype=torch.float64).view(r, n_in)
            p.copy_((0.1 * torch.sin(1 + k)).float())
lora_params = [p for p in peft_model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(lora_params, lr=1e-3, weight_decay=0.01)
loss0 = peft_model(input_ids=xb, labels=xb).loss
loss0.backward()
grads = {n: sample(p.grad) for n, p in peft_model.named_parameters() if 'lora_B' in n}
opt.step()
after = {n: sample(p) for n, p in peft_model.named_parameters() if 'lora_B' in n}
with torch.no_grad():
    loss1 = peft_model(input_ids=xb, labels=xb).loss.item()
lora = {'rank': RANK, 'alpha': ALPHA, 'lr': 1e-3, 'weight_decay': 0.01, 'target_modules': ['q_proj', 'v_proj'], 'A': '0.1*sin(1 + k), k the row-major flat index',
        'loss': loss0.item(), 'loss_after_step': loss1, 'B_gradients': grads, 'B_after_step': after,
        'saved_keys': sorted(get_peft_model_state_dict(peft_model).keys())}

with open(REF, 'w') as f:
    json.dump({'model': 'llama-tiny', 'made_by': 'tools/make-llama-tiny.py (transformers greedy generate; perplexity guide recipe; torch + peft gradients)',
               'max_new_tokens': NEW, 'greedy': greedy, 'greedy_batch': {'prompts': PROMPTS, 'tokens': batch_tokens},
               'perplexity': {'text': 'the first 12 articles of ../shared/data/text/agnews/test.tsv (" #39;" as "\'"), joined by newlines', 'tokens': n_tokens,
                              'windows': [{'max_length': 128, 'stride': 64, 'perplexity': ppl_a, 'scored': count_a}, {'max_length': 64, 'stride': 64, 'perplexity': ppl_b, 'scored': count_b}]},
               'block_length': T, 'ids': ids, 'full': full, 'lora': lora}, f, indent=1)
for g_ in greedy: print(repr(g_['prompt']), '->', repr(tok.decode(g_['tokens'])), file=sys.stderr)
print('perplexity', ppl_a, ppl_b, 'written', OUT, REF, file=sys.stderr)
