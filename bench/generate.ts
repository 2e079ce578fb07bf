/**
 * Text generation, for `npm run bench` (and alone: `npx tsx bench/generate.ts`; `--skip-fortunes` / `--skip-speed` for one part):
 * - a random-weight GPT-2 124M built here by tools/make-gpt2-124m.py (PyTorch), the same weights on both sides:
 *   decode tokens/s at batch 1 with the KV cache against PyTorch eager, and headstart's JavaScript time per token
 *   (a step's wall time minus onnxruntime's run); one LoRA step and one full fine-tuning step at 8 × 128 tokens
 *   against PyTorch (+ PEFT), same threads, PyTorch with the allocator settings the other benches use;
 * - gpt2-tiny-news fine-tuned on the Debian fortunes (files as its README lists, 90 % / 10 % by position) with
 *   headstart's defaults: full, LoRA (rank 16, the other LoRA settings default) and from scratch, against the README's PyTorch reference
 *   (1,834 → 101 in 2.5 minutes; scratch 187).
 * `--evaluation-only`: just the held-out evaluation's cost (per-token loss in the graph vs logits to JavaScript).
 * Nothing is asserted; the numbers are printed with their targets.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { CausalLm } from '../src/generator/causal-lm.js';
import { packCorpus } from '../src/generator/corpus.js';
import { blockFeeds, fineTuneLm, validationLoss } from '../src/generator/fine-tune.js';
import { logSoftmaxAt } from '../src/generator/perplexity.js';
import { generate } from '../src/generator/generate.js';
import { lmTrainingForward } from '../src/generator/lm-graph.js';
import { causalLmLoss } from '../src/generator/lm-loss.js';
import { Rng } from '../src/util/rng.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PYTHON = '/work/pyenv/bin/python';
const TINY = join(ROOT, '../shared/models/gpt2-tiny-news');
const FORTUNES = '/usr/share/games/fortunes';
const FORTUNE_FILES = ['art', 'computers', 'cookie', 'definitions', 'education', 'food', 'humorists', 'law', 'literature', 'love', 'magic', 'medicine', 'men-women', 'miscellaneous', 'news', 'people', 'pets', 'platitudes', 'politics', 'science', 'songs-poems', 'sports', 'wisdom', 'work', 'zippy'];
const THREADS = availableParallelism();
const TUNED_TORCH_ENV = {
  GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184',
  OMP_WAIT_POLICY: 'PASSIVE',
};
const PROMPT_TOKENS = 16;
const NEW_TOKENS = 64;

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function speed(dir: string): Promise<void> {
  section('text generation: random GPT-2 124M, same weights as PyTorch');
  const made = spawnSync(PYTHON, [join(ROOT, 'tools/make-gpt2-124m.py'), dir], { encoding: 'utf8' });
  if (made.status !== 0) {
    line('building GPT-2 124M with PyTorch', 'skipped', made.stderr.split('\n').slice(-3).join(' '));
    return;
  }
  const torch = spawnSync(PYTHON, [join(ROOT, 'bench/torch_generate.py'), dir, String(THREADS), String(PROMPT_TOKENS), String(NEW_TOKENS)], {
    encoding: 'utf8',
    env: { ...process.env, ...TUNED_TORCH_ENV },
  });
  const reference = torch.status === 0 ? JSON.parse(torch.stdout.trim().split('\n').pop()!) : undefined;
  if (!reference) line('PyTorch reference', 'failed', torch.stderr.split('\n').slice(-3).join(' '));

  const lm = await CausalLm.open(dir, { threads: THREADS });
  // onnxruntime's own time, to tell JavaScript's share of each step.
  const session = (lm as unknown as { session: { run: (...a: unknown[]) => Promise<unknown> } }).session;
  const run = session.run.bind(session);
  let ortSeconds = 0;
  session.run = async (...args: unknown[]) => {
    const t = performance.now();
    try {
      return await run(...args);
    } finally {
      ortSeconds += (performance.now() - t) / 1000;
    }
  };
  const rng = new Rng(0);
  const prompt = Array.from({ length: PROMPT_TOKENS }, () => rng.int(8000));
  const text = lm.tokenizer.decode(prompt, true);
  const decodeOnce = async () => {
    ortSeconds = 0;
    const t = performance.now();
    const [result] = await generate(lm, [text], { maxNewTokens: NEW_TOKENS, temperature: 0, eosTokenIds: [] });
    return { seconds: (performance.now() - t) / 1000, ort: ortSeconds, tokens: result!.tokenIds.length };
  };
  await decodeOnce();
  const runs = [await decodeOnce(), await decodeOnce(), await decodeOnce()];
  const mid = runs.sort((a, b) => a.seconds - b.seconds)[1]!;
  const ours = mid.tokens / mid.seconds;
  const overheadMs = ((mid.seconds - mid.ort) / mid.tokens) * 1000;
  line(`decode, batch 1, ${PROMPT_TOKENS}-token prompt + ${NEW_TOKENS} greedy, headstart`, `${ours.toFixed(1)} tok/s`);
  if (reference) {
    const theirs = reference.new_tokens / reference.decode_seconds;
    line('decode, same, PyTorch eager (KV cache)', `${theirs.toFixed(1)} tok/s`, `ratio ${(ours / theirs).toFixed(2)}× (target ≥ 1.5×)`);
  }
  line('JavaScript time per token (wall − onnxruntime run)', `${overheadMs.toFixed(2)} ms`, 'target ≤ 2 ms');
  await lm.dispose();

  const bytes = new Uint8Array(await readFile(join(dir, 'onnx/model.onnx')));
  const corpus = { blockLength: 128, ids: Int32Array.from({ length: 8 * 128 }, () => rng.int(50257)), targets: new Uint8Array(8 * 128).fill(1), blocks: 8, tokens: 1024, documents: 1, chunked: 0 };
  const { batch, targets } = blockFeeds(corpus, [0, 1, 2, 3, 4, 5, 6, 7]);
  for (const mode of ['lora', 'full'] as const) {
    const forward = await lmTrainingForward(bytes, dir, { blockLength: 128, vocabSize: 50257, rng: new Rng(1), tieEmbeddings: true, lora: mode === 'lora' ? { rank: 8, alpha: 8, targetModules: ['c_attn'] } : undefined });
    const params = mode === 'lora' ? forward.adapters.flatMap((a) => [{ name: a.a }, { name: a.b }]) : forward.baseWeights.map((name) => ({ name }));
    const training = buildTrainingGraph({ graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, 128, 50257), params, optimizer: { kind: 'adamw', weightDecay: 0.01 }, clipGradNorm: 1, origin: dir });
    const steps = await TrainingSession.create(training, (n) => forward.graph.initializers.get(n)!.data as Float32Array, dir, THREADS);
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t = performance.now();
      await steps.step(batch, targets, 1e-4);
      if (i > 0) times.push((performance.now() - t) / 1000);
    }
    await steps.release();
    const ourStep = median(times);
    const theirStep = reference?.[mode === 'lora' ? 'lora_step_seconds' : 'full_step_seconds'];
    line(`${mode === 'lora' ? 'LoRA (r 8, c_attn)' : 'full fine-tuning'} step, 8 × 128 tokens, headstart`, `${ourStep.toFixed(2)} s`);
    if (theirStep) line(`  same, PyTorch${mode === 'lora' ? ' + PEFT' : ''}`, `${theirStep.toFixed(2)} s`, `ratio ${(ourStep / theirStep).toFixed(2)}× (target ${mode === 'lora' ? '≤ 1' : '≤ 1.2'}×)`);
  }
}

/**
 * The held-out evaluation fineTuneLm runs (gpt2-tiny-news, 8 × 128-token fortunes blocks): each position's loss
 * from the evaluation graph (what it does) against the logits fetched and log-softmaxed in JavaScript (what it
 * did), interleaved, same session.
 */
async function evaluationCost(text: string): Promise<void> {
  const lm = await CausalLm.open(TINY, { threads: THREADS });
  const documents = text.slice(0, 200_000).split(/\r?\n[ \t]*\r?\n/).filter((d) => d.trim()).map((d) => ({ text: d.trim(), source: 'fortunes' }));
  const corpus = packCorpus(documents, lm.tokenizer, 128, 0);
  const blocks = Math.min(64, corpus.blocks);
  const forward = await lmTrainingForward(new Uint8Array(await readFile(lm.graphPath)), TINY, { blockLength: 128, vocabSize: lm.vocabSize, rng: new Rng(0), tieEmbeddings: true });
  const training = buildTrainingGraph({ graph: forward.graph, info: forward.info, logits: forward.logits, loss: causalLmLoss(forward.logits, 128, lm.vocabSize), params: forward.baseWeights.map((name) => ({ name })), optimizer: { kind: 'adamw', weightDecay: 0.01 }, origin: TINY });
  const session = await TrainingSession.create(training, (n) => forward.graph.initializers.get(n)!.data as Float32Array, TINY, THREADS);
  const viaLogits = async () => {
    let nll = 0;
    for (let start = 0; start < blocks; start += 8) {
      const rows = Array.from({ length: Math.min(8, blocks - start) }, (_, i) => start + i);
      const { batch } = blockFeeds(corpus, rows);
      const logits = await session.evaluate(batch);
      rows.forEach((row, r) => {
        for (let i = 1; i < 128; i++) nll -= logSoftmaxAt(logits, (r * 128 + i - 1) * lm.vocabSize, lm.vocabSize, corpus.ids[row * 128 + i]!);
      });
    }
    return nll / (blocks * 127);
  };
  const timed = async (f: () => Promise<number>) => {
    const t = performance.now();
    const loss = await f();
    return { loss, seconds: (performance.now() - t) / 1000 };
  };
  const before: number[] = [];
  const after: number[] = [];
  let losses = { before: 0, after: 0 };
  for (let round = 0; round < 3; round++) {
    const a = await timed(viaLogits);
    const b = await timed(() => validationLoss(session, corpus, 8, blocks));
    before.push(a.seconds);
    after.push(b.seconds);
    losses = { before: a.loss, after: b.loss };
  }
  await session.release();
  await lm.dispose();
  line(`held-out evaluation, ${blocks} blocks: logits to JS + log-softmax`, `${median(before).toFixed(2)} s`, `loss ${losses.before.toFixed(5)}`);
  line('  same, per-token loss from the graph (fineTuneLm)', `${median(after).toFixed(2)} s`, `loss ${losses.after.toFixed(5)}; ${(median(before) / median(after)).toFixed(2)}× faster`);
}

async function fortunes(dir: string): Promise<void> {
  section('fine-tuning gpt2-tiny-news on Debian fortunes (defaults), against the README\'s PyTorch reference');
  if (!existsSync(join(FORTUNES, 'art'))) {
    line('fortunes', 'skipped', `${FORTUNES} missing (apt-get install fortunes)`);
    return;
  }
  // One text, the files concatenated in the README's order; the last 10 % of its blocks are held out.
  const text = (await Promise.all(FORTUNE_FILES.map((f) => readFile(join(FORTUNES, f), 'utf8')))).join('');
  await evaluationCost(text);
  if (process.argv.includes('--evaluation-only')) return;
  const corpus = join(dir, 'fortunes.txt');
  await writeFile(corpus, text);
  const runs = [
    { label: 'full fine-tuning', options: {} },
    { label: 'LoRA rank 16', options: { lora: { rank: 16 } } },
    { label: 'from scratch (same architecture, random init, lr 1e-3)', options: { fromScratch: true, learningRate: 1e-3 } },
  ];
  const results: Record<string, number> = {};
  for (const run of runs) {
    const result = await fineTuneLm(TINY, corpus, { out: join(dir, `model-${Object.keys(results).length}`), threads: THREADS, ...run.options });
    results[run.label] = result.perplexity;
    line(`${run.label}: held-out perplexity before → after`, `${result.perplexityBefore.toFixed(0)} → ${result.perplexity.toFixed(1)}`, `${result.steps} steps of 8 × 128 in ${(result.seconds / 60).toFixed(1)} min${result.stoppedEarly ? ' (stopped early)' : ''}`);
    if (run.label === 'full fine-tuning') line('  PyTorch reference (README): 1,834 → 101 in 2.5 min', `${(result.perplexity / 101).toFixed(2)}× ppl`, `${(result.seconds / 150).toFixed(2)}× time (targets ≤ 1.15×, ≤ 2×)`);
    if (run.label === 'LoRA rank 16') line('  LoRA against full fine-tuning', `${(result.perplexity / results['full fine-tuning']! - 1) * 100 > 0 ? '+' : ''}${((result.perplexity / results['full fine-tuning']! - 1) * 100).toFixed(1)} %`, 'target within 10 %');
    if (run.label.startsWith('from scratch')) line('  PyTorch from scratch (README)', '187', 'same budget');
  }
}

export async function generateBench(options: { fortunes?: boolean; speed?: boolean } = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'headstart-bench-generate-'));
  try {
    if (options.speed !== false) await speed(join(dir, 'gpt2-124m'));
    if (options.fortunes !== false) await fortunes(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await generateBench({ fortunes: !process.argv.includes('--skip-fortunes'), speed: !process.argv.includes('--skip-speed') });
