import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLm, generate, perplexity, streamGenerate } from '../src/generator/index.js';

const MODEL = new URL('../../shared/models/gpt2-tiny-news', import.meta.url).pathname;
/** transformers' greedy tokens and perplexities for the same weights (tools/generate-reference.py). */
const REFERENCE = JSON.parse(readFileSync(new URL('./fixtures/generate/gpt2-tiny-news.json', import.meta.url), 'utf8'));

function heldOutText(): string {
  const lines = readFileSync(new URL('../../shared/data/text/sst2/test.tsv', import.meta.url), 'utf8').split('\n').slice(1, 81);
  return lines.filter((l) => l).map((l) => l.split('\t')[0]).join('\n');
}

let lm: CausalLm;
beforeAll(async () => {
  lm = await CausalLm.open(MODEL, { threads: 1 });
});
afterAll(async () => lm?.dispose());

describe('gpt2-tiny-news in the Optimum ONNX layout', () => {
  it('tokenises prompts as transformers does', () => {
    for (const { prompt, prompt_ids } of REFERENCE.greedy) expect(lm.tokenizer.ids(prompt)).toEqual(prompt_ids);
  });

  it('greedy decoding with the KV cache gives transformers\' tokens, one prompt at a time', async () => {
    for (const { prompt, tokens } of REFERENCE.greedy) {
      const [result] = await generate(lm, [prompt], { maxNewTokens: REFERENCE.max_new_tokens, temperature: 0 });
      expect(result!.tokenIds).toEqual(tokens);
      expect(result!.finishReason).toBe(tokens.length < REFERENCE.max_new_tokens ? 'eos' : 'length');
    }
  });

  it('a left-padded batch gives each prompt transformers\' batched greedy tokens', async () => {
    const results = await generate(lm, REFERENCE.greedy_batch.prompts, { maxNewTokens: REFERENCE.max_new_tokens });
    expect(results.map((r) => r.tokenIds)).toEqual(REFERENCE.greedy_batch.tokens);
  });

  it('perplexity over sliding windows agrees with transformers within 0.5 %', async () => {
    const text = heldOutText();
    for (const window of REFERENCE.perplexity.windows) {
      const result = await perplexity(lm, text, { maxLength: window.max_length, stride: window.stride });
      expect(result.tokens).toBe(REFERENCE.perplexity.tokens);
      expect(result.scored).toBe(window.scored);
      expect(Math.abs(result.perplexity / window.perplexity - 1)).toBeLessThan(0.005);
    }
  });

  it('streams text whose pieces add up to the result', async () => {
    const pieces: string[] = [];
    let final = '';
    for await (const event of streamGenerate(lm, ['The stock market'], { maxNewTokens: 12, temperature: 0 })) {
      if (event.type === 'token') pieces.push(event.text);
      else final = event.result.text;
    }
    expect(pieces.length).toBeGreaterThanOrEqual(12);
    expect(pieces.join('')).toBe(final);
    expect(final).toBe(lm.tokenizer.decode(REFERENCE.greedy[0].tokens.slice(0, 12)));
  });
});
