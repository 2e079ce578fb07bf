import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReplaceGuard } from '../util/atomic.js';
import { writeDirAtomic } from '../util/atomic.js';
import { modelError } from '../util/errors.js';
import { CAUSAL_LM_GRAPHS } from './causal-lm.js';

const MARKER = 'headstart-export.json';
const HF_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** An export replaces only an earlier export (it carries headstart-export.json) or an empty folder. */
export const LM_EXPORT_GUARD: ReplaceGuard = {
  what: 'ONNX export folder',
  ours: `an earlier export (a folder with ${MARKER})`,
  isOurs: async (path) => Boolean(await stat(join(path, MARKER)).catch(() => undefined)),
};

/**
 * Writes the Hugging Face ONNX folder of a causal LM model folder — config, tokenizer and the decoder
 * graph with LoRA already merged, under the base model's input and output names — and nothing of
 * headstart's own, so transformers.js, Optimum or onnxruntime load it as they load the base model.
 */
export async function exportLmFolder(model: string, out: string): Promise<{ out: string; files: string[] }> {
  const graph = await firstGraph(model);
  const files: string[] = [];
  await writeDirAtomic(out, async (dir) => {
    for (const file of HF_FILES) {
      if (!(await stat(join(model, file)).catch(() => undefined))) continue;
      await copyFile(join(model, file), join(dir, file));
      files.push(file);
    }
    await mkdir(join(dir, 'onnx'));
    await copyFile(join(model, graph), join(dir, graph));
    files.push(graph);
    const manifest = await readFile(join(model, 'manifest.json'), 'utf8').then(JSON.parse, () => undefined);
    await writeFile(join(dir, MARKER), `${JSON.stringify({ exportedFrom: model, base: manifest?.base ?? null, lora: manifest?.lora ? 'merged' : null }, null, 2)}\n`);
  }, LM_EXPORT_GUARD);
  return { out, files };
}

async function firstGraph(model: string): Promise<string> {
  for (const graph of CAUSAL_LM_GRAPHS) if ((await stat(join(model, graph)).catch(() => undefined))?.isFile()) return graph;
  throw modelError(`no ${CAUSAL_LM_GRAPHS.join(' or ')}`, model);
}
