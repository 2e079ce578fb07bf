"""Reference numbers for test/generate-*.test.ts, from transformers on the same weights.

Greedy continuations (one prompt at a time, and as one left-padded batch) and the sliding-window
perplexity recipe of transformers' "Perplexity of fixed-length models" guide, on held-out text.
Run: /work/pyenv/bin/python tools/generate-reference.py > test/fixtures/generate/gpt2-tiny-news.json
"""
import json, math, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL = "../shared/models/gpt2-tiny-news"
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL).eval()

PROMPTS = ["The stock market", "Scientists said on Tuesday that", "This movie is", "A"]
NEW = 24

def greedy_single(prompt):
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    gen = out[0, ids.shape[1]:].tolist()
    if 0 in gen: gen = gen[: gen.index(0)]
    return gen

def greedy_batch(prompts):
    tok.padding_side = "left"
    tok.pad_token = tok.eos_token
    enc = tok(prompts, return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    res = []
    for row in out[:, enc.input_ids.shape[1]:].tolist():
        if 0 in row: row = row[: row.index(0)]
        res.append(row)
    return res

def held_out_text():
    lines = open("../shared/data/text/sst2/test.tsv", encoding="utf8").read().split("\n")[1:81]
    return "\n".join(l.split("\t")[0] for l in lines if l)

def perplexity(text, max_length, stride):
    ids = tok(text, return_tensors="pt").input_ids
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
        nll_sum += loss.item() * valid
        count += valid
        prev_end = end
        if end == n: break
    return math.exp(nll_sum / count), count, n

text = held_out_text()
ppl_256_128, count_a, n_tokens = perplexity(text, 256, 128)
ppl_128_128, count_b, _ = perplexity(text, 128, 128)
json.dump({
    "model": "gpt2-tiny-news",
    "made_by": "tools/generate-reference.py (transformers greedy generate; perplexity guide recipe)",
    "max_new_tokens": NEW,
    "greedy": [{"prompt": p, "prompt_ids": tok(p).input_ids, "tokens": greedy_single(p)} for p in PROMPTS],
    "greedy_batch": {"prompts": PROMPTS, "tokens": greedy_batch(PROMPTS)},
    "perplexity": {
        "text": "the first 80 sentences of ../shared/data/text/sst2/test.tsv, joined by newlines",
        "tokens": n_tokens,
        "windows": [
            {"max_length": 256, "stride": 128, "perplexity": ppl_256_128, "scored": count_a},
            {"max_length": 128, "stride": 128, "perplexity": ppl_128_128, "scored": count_b},
        ],
    },
}, sys.stdout, indent=1)
