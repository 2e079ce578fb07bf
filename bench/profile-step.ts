/**
 * Where a training step's time goes: runs the fine-tuning bench's step graph (bench/finetune.ts
 * `fixtureStep`) with onnxruntime's profiler and prints the kernel time per operator type (after
 * onnxruntime's own graph rewrites, so fused and NCHWc kernels show under their own names) and the
 * slowest nodes. Usage: npx tsx bench/profile-step.ts <mobilenet-v2-random|resnet-18-random> <top2|all> [steps];
 * `npx tsx bench/profile-step.ts gpt2-124m <full|lora> [steps]` profiles bench/generate.ts's GPT-2 124M step
 * (random weights from tools/make-gpt2-124m.py, 8 × 128 tokens).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { ort } from '../src/backbones/onnx-session.js';
import { nchwcBlockSize } from '../src/autodiff/nchwc.js';
import { fixtureStep, type Scope } from './finetune.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { blockFeeds } from '../src/generator/fine-tune.js';
import { lmTrainingForward } from '../src/generator/lm-graph.js';
import { causalLmLoss } from '../src/generator/lm-loss.js';
import { Rng } from '../src/util/rng.js';

/** bench/generate.ts's training step on a random GPT-2 124M (full or LoRA r 8 on c_attn), in the shape fixtureStep returns. */
async function lmStep(scope: 'full' | 'lora') {
  const dir = join(tmpdir(), 'headstart-profile-gpt2-124m');
  const made = spawnSync('/work/pyenv/bin/python', [fileURLToPath(new URL('../tools/make-gpt2-124m.py', import.meta.url)), dir], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('tools/make-gpt2-124m.py failed');
  const forward = await lmTrainingForward(new Uint8Array(await readFile(join(dir, 'onnx/model.onnx'))), dir, { blockLength: 128, vocabSize: 50257, rng: new Rng(1), tieEmbeddings: true, lora: scope === 'lora' ? { rank: 8, alpha: 8, targetModules: ['c_attn'] } : undefined });
  const params = scope === 'lora' ? forward.adapters.flatMap((a) => [{ name: a.a }, { name: a.b }]) : forward.baseWeights.map((name) => ({ name }));
  const training = buildTrainingGraph({ graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, 128, 50257), params, optimizer: { kind: 'adamw', weightDecay: 0.01 }, clipGradNorm: 1, origin: dir });
  const rng = new Rng(0);
  const corpus = { blockLength: 128, ids: Int32Array.from({ length: 8 * 128 }, () => rng.int(50257)), targets: new Uint8Array(8 * 128).fill(1), blocks: 8, tokens: 1024, documents: 1, chunked: 0 };
  const { batch, targets } = blockFeeds(corpus, [0, 1, 2, 3, 4, 5, 6, 7]);
  return { training, batch, targets: targets as ort.Tensor | Record<string, ort.Tensor>, weight: (n: string) => forward.graph.initializers.get(n)!.data as Float32Array };
}

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

const [model = 'mobilenet-v2-random', scope = 'top2', stepsArg = '5'] = process.argv.slice(2);
const steps = Number(stepsArg);
const { training, batch, targets, weight } = model === 'gpt2-124m' ? await lmStep(scope as 'full' | 'lora') : await fixtureStep(model, await nchwcBlockSize(), scope as Scope);
const dir = await mkdtemp(join(tmpdir(), 'headstart-profile-'));
const session = await ort.InferenceSession.create(training.step, {
  intraOpNumThreads: availableParallelism(),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  enableProfiling: true,
  profileFilePrefix: join(dir, 'step'),
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const feeds: Record<string, ort.Tensor> = {
  ...batch,
  ...(targets instanceof ort.Tensor ? { [training.targets]: targets } : (targets as Record<string, ort.Tensor>)),
  [training.learningRate]: new ort.Tensor('float32', Float32Array.of(1e-4), []),
  [training.stepNumber]: new ort.Tensor('float32', Float32Array.of(1), []),
};
for (const param of training.params) {
  feeds[param.input] = new ort.Tensor('float32', weight(param.name).slice(), param.dims);
  for (const state of param.state) feeds[state.input] = new ort.Tensor('float32', new Float32Array(param.dims.reduce((a, b) => a * b, 1)), param.dims);
}
await session.run(feeds); // warm-up (its time is in the profile too: subtracted below by counting runs)
const started = performance.now();
for (let i = 0; i < steps; i++) await session.run(feeds);
const wall = (performance.now() - started) / steps;
session.endProfiling();
await session.release();
const file = (await readdir(dir)).find((name) => name.endsWith('.json'))!;
const events = JSON.parse(await readFile(join(dir, file), 'utf8')) as ProfileEvent[];
await rm(dir, { recursive: true, force: true });

const kernels = events.filter((event) => event.cat === 'Node' && event.name.endsWith('_kernel_time'));
const runs = steps + 1;
const byOp = new Map<string, { us: number; count: number }>();
const byNode = new Map<string, { us: number; op: string }>();
for (const event of kernels) {
  const op = event.args?.op_name ?? '?';
  const entry = byOp.get(op) ?? { us: 0, count: 0 };
  entry.us += event.dur;
  entry.count++;
  byOp.set(op, entry);
  const node = event.name.replace(/_kernel_time$/, '');
  const nodeEntry = byNode.get(node) ?? { us: 0, op };
  nodeEntry.us += event.dur;
  byNode.set(node, nodeEntry);
}
const total = [...byOp.values()].reduce((sum, entry) => sum + entry.us, 0) / runs;
console.log(`${model} ${scope}: ${wall.toFixed(1)} ms wall per step, ${(total / 1000).toFixed(1)} ms summed kernel time per step, ${kernels.length / runs} kernels per step`);
console.log('op type'.padEnd(28), 'ms/step'.padStart(9), 'share'.padStart(7), 'nodes'.padStart(6));
for (const [op, entry] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 18)) {
  console.log(op.padEnd(28), (entry.us / runs / 1000).toFixed(2).padStart(9), `${((100 * entry.us) / runs / total).toFixed(1)}%`.padStart(7), String(entry.count / runs).padStart(6));
}
console.log('\nslowest nodes');
for (const [node, entry] of [...byNode].sort((a, b) => b[1].us - a[1].us).slice(0, 15)) {
  console.log(`${(entry.us / runs / 1000).toFixed(2).padStart(8)} ms  ${entry.op.padEnd(18)} ${node}`);
}
