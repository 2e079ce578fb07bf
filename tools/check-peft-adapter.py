"""Loads a headstart LoRA model folder's adapter with PEFT and prints transformers' greedy tokens, to compare with
headstart's own (from the merged onnx/model.onnx of the same folder).
Usage: /work/pyenv/bin/python tools/check-peft-adapter.py BASE_MODEL_DIR HEADSTART_FOLDER "prompt" N"""
import json, sys
import transformers.utils as _tu
import transformers.utils.import_utils as _iu
for _m in (_tu, _iu):  # the machine's torchvision may not match its torch; text models only need it absent
    _m.is_torchvision_available = lambda: False
    _m.is_torchvision_v2_available = lambda: False
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel

base_dir, folder, prompt, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tok = AutoTokenizer.from_pretrained(base_dir)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), folder).eval()
ids = tok(prompt, return_tensors="pt").input_ids
out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, pad_token_id=0)
print(json.dumps(out[0, ids.shape[1]:].tolist()))
