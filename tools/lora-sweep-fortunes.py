"""LoRA settings swept in PyTorch + PEFT on the fortunes bench, with headstart's data and budget, to choose
headstart's LoRA defaults (`fineTuneLm`) without a slow headstart run per setting.

Same as headstart's `headstart train fortunes.txt --task generate` (bench/generate.ts):
- the Debian fortunes files of gpt2-tiny-news's README concatenated, split into documents on blank lines
  (src/generator/corpus.ts), each tokenised + EOS (id 0), packed into 128-token blocks; the last 10 % of the blocks
  held out (by position); a block's first token is never a target;
- batches of 8 blocks, one epoch (floor(train blocks / 8) steps), AdamW (0.9, 0.999, eps 1e-8, weight decay 0.01 on
  rank ≥ 2 tensors), linear warm-up over 5 % of the steps then cosine to 0, clipping at norm 1; held-out loss on the
  first 64 held-out blocks every 10 % of the steps, the best weights kept (patience 3); perplexity at the end over
  every held-out block.
One run per setting: `r16:lr2e-3:t=c_attn,c_proj,c_fc:save=wte,ln_f` (alpha defaults to 2r; `full:lr5e-4` is full
fine-tuning). `save=` is PEFT's modules_to_save, with ensure_weight_tying: `save=lm_head` trains the tied embedding
(PEFT wraps transformer.wte and lm_head around one trainable copy and saves both keys; `save=wte` alone would untie
them, the output projection staying frozen). Each run also
saves its adapter with save_pretrained and reloads it with PeftModel.from_pretrained, checking the reloaded model's
held-out loss matches (the adapter is PEFT-loadable).
Usage: /work/pyenv/bin/python tools/lora-sweep-fortunes.py RESULTS.jsonl THREADS SETTING...
"""
import json, math, os, re, sys, tempfile, time
import transformers.utils as _tu
import transformers.utils.import_utils as _iu
for _m in (_tu, _iu):  # the machine's torchvision may not match its torch; text models only need it absent
    _m.is_torchvision_available = lambda: False
    _m.is_torchvision_v2_available = lambda: False
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

MODEL = os.path.join(os.path.dirname(__file__), "../../shared/models/gpt2-tiny-news")
FORTUNES = "/usr/share/games/fortunes"
FILES = ["art", "computers", "cookie", "definitions", "education", "food", "humorists", "law", "literature", "love", "magic",
         "medicine", "men-women", "miscellaneous", "news", "people", "pets", "platitudes", "politics", "science",
         "songs-poems", "sports", "wisdom", "work", "zippy"]
T, BATCH, EVAL_BLOCKS, PATIENCE, WARMUP, WD, CLIP = 128, 8, 64, 3, 0.05, 0.01, 1.0


def blocks():
    text = "".join(open(os.path.join(FORTUNES, f), encoding="utf-8").read() for f in FILES)
    docs = [d.strip() for d in re.split(r"\r?\n[ \t]*\r?\n", text)]
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    ids = []
    for d in docs:
        if d:
            ids += tok.encode(d, add_special_tokens=False).ids + [0]
    n = len(ids) // T
    x = torch.tensor(ids[: n * T]).view(n, T)
    held = max(1, round(n * 0.1))
    return x[: n - held], x[n - held:]


def parse(setting):
    parts = setting.split(":")
    out = {"kind": "full" if parts[0] == "full" else "lora", "setting": setting}
    if out["kind"] == "lora":
        out["r"] = int(parts[0][1:])
        out["alpha"] = 2 * out["r"]
        out["targets"] = ["c_attn"]
        out["save"] = []
    for p in parts[1:]:
        key, value = p.split("=", 1) if "=" in p else re.match(r"([a-z]+)(.*)", p).groups()
        if key == "lr": out["lr"] = float(value)
        elif key == "a": out["alpha"] = float(value)
        elif key == "t": out["targets"] = value.split(",")
        elif key == "save": out["save"] = value.split(",")
        elif key == "bias": out["bias"] = value
        else: raise SystemExit(f"unknown part {p}")
    return out


@torch.no_grad()
def held_out_loss(model, x, limit=None):
    model.eval()
    x = x[:limit] if limit else x
    nll, count = 0.0, 0
    for i in range(0, len(x), BATCH):
        b = x[i:i + BATCH]
        logits = model(input_ids=b).logits[:, :-1].float()
        nll += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="sum").item()
        count += b[:, 1:].numel()
    model.train()
    return nll / count


def run(cfg, train, val, seed=0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(MODEL).float()
    if cfg["kind"] == "lora":
        config = LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=0.0, target_modules=cfg["targets"], fan_in_fan_out=True,
                            modules_to_save=cfg["save"] or None, ensure_weight_tying=bool(cfg["save"]), bias=cfg.get("bias", "none"), task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}], lr=cfg["lr"])
    steps = min(len(train) // BATCH, int(os.environ.get("MAX_STEPS", "0")) or len(train))  # MAX_STEPS: smoke runs only
    warm = min(round(WARMUP * steps), steps - 1)
    lr_at = lambda s: cfg["lr"] * (s + 1) / warm if s < warm else cfg["lr"] * 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm)))
    every = max(1, round(steps / 10))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    best, best_state, since = float("inf"), None, 0
    started = time.time()
    curve = []
    for s in range(steps):
        for g in opt.param_groups: g["lr"] = lr_at(s)
        b = train[order[s * BATCH:(s + 1) * BATCH]]
        loss = model(input_ids=b, labels=b).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        if (s + 1) % every == 0 or s + 1 == steps:
            v = held_out_loss(model, val, EVAL_BLOCKS)
            curve.append([s + 1, round(loss.item(), 4), round(v, 4)])
            if v < best - 1e-4:
                best, since = v, 0
                best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            else:
                since += 1
                if since >= PATIENCE: break
    with torch.no_grad():
        named = dict(model.named_parameters())
        for n, v in best_state.items(): named[n].copy_(v)
    seconds = time.time() - started
    loss = held_out_loss(model, val)
    result = {**cfg, "steps": s + 1, "planned_steps": steps, "perplexity": math.exp(loss), "seconds": round(seconds, 1), "curve": curve,
              "trainable": sum(p.numel() for p in params)}
    if cfg["kind"] == "lora" and not os.environ.get("SKIP_RELOAD"):  # SKIP_RELOAD: screening runs
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            result["adapter_files"] = sorted(os.listdir(d))
            reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL).float(), d)
            result["reloaded_perplexity"] = math.exp(held_out_loss(reloaded, val))
    return result


if __name__ == "__main__":
    out, threads, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(threads)
    train, val = blocks()
    print(f"{len(train)} training blocks, {len(val)} held out; {len(train) // BATCH} steps", file=sys.stderr)
    for setting in settings:
        result = run(parse(setting), train, val)
        print(json.dumps(result), file=sys.stderr)
        with open(out, "a") as f: f.write(json.dumps(result) + "\n")
