import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeModel, encodeModel } from '../backbones/tfjs/onnx-graph.js';
import { unshareInitializers } from '../autodiff/model.js';
import { MANIFEST_FILE, METRICS_FILE, MODEL_FOLDER_GUARD, MODEL_FORMAT, MODEL_FORMAT_VERSION } from '../artifacts/model-folder.js';
import { encodeSafetensors } from '../artifacts/safetensors.js';
import { writeDirAtomic } from '../util/atomic.js';
import { VERSION } from '../version.js';
import type { CausalLm } from './causal-lm.js';
import type { LmTrainingForward, LoraAdapter, LoraSettings, SavedModuleWeight } from './lm-graph.js';

/** Side files of a Hugging Face decoder folder, copied from the base model. */
const SIDE_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

export interface SaveLmFolderInput {
  lm: CausalLm;
  /** The base model's inference graph (with its KV cache), whose weights are replaced. */
  graphBytes: Uint8Array;
  forward: LmTrainingForward;
  /** Trained values by initializer name (full fine-tuning: every base weight; LoRA: the adapters). */
  weights: Map<string, Float32Array>;
  /** Random starting weights not trained away (scratch runs): written too. */
  startWeights?: Map<string, Float32Array>;
  /** `saved`: the modules_to_save weights (their trained values are in `weights`). */
  lora?: LoraSettings & { dropout: number; saved?: SavedModuleWeight[] };
  metrics: { perplexity: number; perplexityBefore: number } & Record<string, unknown>;
  training: Record<string, unknown>;
}

/**
 * The fine-tuned model as a folder that is at once headstart's model folder (manifest.json,
 * metrics.json) and a Hugging Face ONNX decoder folder (config, tokenizer, onnx/model.onnx with the
 * original inputs and outputs, LoRA merged), so `headstart generate`, the server and transformers.js
 * open it as they open the base model. LoRA also keeps its adapter in PEFT's format. Written atomically.
 */
export async function saveLmFolder(out: string, input: SaveLmFolderInput): Promise<string> {
  const { lm, forward, weights, lora } = input;
  const graph = decodeModel(input.graphBytes, lm.graphPath);
  unshareInitializers(graph);
  const set = (name: string, data: Float32Array) => {
    const init = graph.initializers.get(name);
    if (!init || init.data.length !== data.length) throw new Error(`cannot write ${name} into the inference graph`);
    graph.initializers.set(name, { ...init, data: data.slice() } as typeof init);
  };
  const adapters = forward.adapters;
  for (const [name, data] of [...(input.startWeights ?? []), ...weights]) if (!adapters.some((a) => a.a === name || a.b === name)) set(name, data);
  for (const adapter of adapters) set(adapter.weight, merged(graph.initializers.get(adapter.weight)!.data as Float32Array, adapter, weights, lora!));
  if (forward.tied) {
    const embedding = graph.initializers.get(forward.tied.embedding)!;
    const [vocab, hidden] = embedding.dims as [number, number];
    const e = embedding.data as Float32Array;
    const copy = new Float32Array(vocab * hidden);
    for (let v = 0; v < vocab; v++) for (let h = 0; h < hidden; h++) copy[h * vocab + v] = e[v * hidden + h]!;
    set(forward.tied.copy, copy);
  }
  const model = encodeModel(graph, 'causal_lm', `fine-tuned by headstart from ${lm.reference}`, { producer: 'headstart' });
  const manifest = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    task: 'generate',
    headstartVersion: VERSION,
    createdAt: new Date().toISOString(),
    base: lm.reference,
    lora: lora ?? null,
    metrics: input.metrics,
    training: input.training,
  };
  await writeDirAtomic(out, async (dir) => {
    for (const file of SIDE_FILES) if (await stat(join(lm.folder, file)).catch(() => undefined)) await copyFile(join(lm.folder, file), join(dir, file));
    await mkdir(join(dir, 'onnx'));
    await writeFile(join(dir, 'onnx/model.onnx'), model);
    if (lora) {
      await writeFile(join(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(peftConfig(lm, adapters, lora), null, 2)}\n`);
      const savedTensors = (lora.saved ?? []).flatMap((w) => w.keys.map((key) => [key, { shape: forward.graph.initializers.get(w.initializer)!.dims, data: weights.get(w.initializer)! }] as const));
      await writeFile(join(dir, ADAPTER_WEIGHTS_FILE), encodeSafetensors(Object.fromEntries([...adapters.flatMap((a) => [
        [`base_model.model.${a.module}.lora_A.weight`, { shape: [lora.rank, a.inFeatures], data: weights.get(a.a)! }] as const,
        [`base_model.model.${a.module}.lora_B.weight`, { shape: [a.outFeatures, lora.rank], data: weights.get(a.b)! }] as const,
      ]), ...savedTensors]), { format: 'pt' }));
    }
    await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    await writeFile(join(dir, METRICS_FILE), `${JSON.stringify(input.metrics, null, 2)}\n`);
  }, MODEL_FOLDER_GUARD);
  return out;
}

/** W + (alpha/rank)·(B·A)ᵀ (W stored [in, out], fan_in_fan_out) or W + (alpha/rank)·B·A (W stored [out, in]). */
function merged(weight: Float32Array, adapter: LoraAdapter, weights: Map<string, Float32Array>, lora: LoraSettings): Float32Array {
  const a = weights.get(adapter.a)!;
  const b = weights.get(adapter.b)!;
  const { inFeatures, outFeatures } = adapter;
  const r = lora.rank;
  const scale = lora.alpha / r;
  const out = weight.slice();
  for (let o = 0; o < outFeatures; o++) {
    for (let i = 0; i < inFeatures; i++) {
      let delta = 0;
      for (let k = 0; k < r; k++) delta += b[o * r + k]! * a[k * inFeatures + i]!;
      const at = adapter.storedInOut ? i * outFeatures + o : o * inFeatures + i;
      out[at]! += scale * delta;
    }
  }
  return out;
}

/** adapter_config.json as PEFT writes it for LoRA on a causal LM. */
function peftConfig(lm: CausalLm, adapters: LoraAdapter[], lora: LoraSettings & { dropout: number; saved?: SavedModuleWeight[] }) {
  const saved = [...new Set((lora.saved ?? []).map((w) => w.module))];
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: lm.reference.replace(/^hf:/, '').replace(/@.*$/, ''),
    r: lora.rank,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    target_modules: lora.targetModules,
    fan_in_fan_out: adapters.some((a) => a.fanInFanOut),
    bias: 'none',
    inference_mode: true,
    init_lora_weights: true,
    // As PEFT writes them: module paths (a tied lm_head as the embedding it shares), weight tying kept on load.
    modules_to_save: saved.length ? saved : null,
    ...(saved.length ? { ensure_weight_tying: true } : {}),
    revision: null,
  };
}
