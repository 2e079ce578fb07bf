/**
 * Where a training step's time goes: runs the fine-tuning bench's step graph (bench/finetune.ts
 * `fixtureStep`) with onnxruntime's profiler and prints the kernel time per operator type (after
 * onnxruntime's own graph rewrites, so fused and NCHWc kernels show under their own names) and the
 * slowest nodes. Usage: npx tsx bench/profile-step.ts <mobilenet-v2-random|resnet-18-random> <top2|all> [steps]
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { ort } from '../src/backbones/onnx-session.js';
import { nchwcBlockSize } from '../src/autodiff/nchwc.js';
import { fixtureStep, type Scope } from './finetune.js';

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

const [model = 'mobilenet-v2-random', scope = 'top2', stepsArg = '5'] = process.argv.slice(2);
const steps = Number(stepsArg);
const { training, batch, targets, weight } = await fixtureStep(model, await nchwcBlockSize(), scope as Scope);
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
  [training.targets]: targets,
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
