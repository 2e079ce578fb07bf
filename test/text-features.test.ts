import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstTokenPool, l2NormalizeRows, maskedMeanPool, poolWordVectors, sifWeights } from '../src/backbones/text-pooling.js';
import { openTextBackbone } from '../src/backbones/text-resolve.js';
import { TfidfFeatureMap, termsOf } from '../src/backbones/text-tfidf.js';
import { HfTokenizer, wordIds, wordTokens } from '../src/backbones/text-tokenizers.js';
import { TransformerTextBackbone } from '../src/backbones/text-transformer.js';
import { streamWinkJson, WordVectorBackbone, WORD_VECTOR_DEFAULTS, type WordVectorTable } from '../src/backbones/text-word-vectors.js';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { SHARED } from './helpers/images.js';
import { BERT, HUB_FIXTURES, hubTempDir } from './helpers/hub-fixtures.js';
import { startHubServer } from './helpers/hub-server.js';

const BERT_TINY = join(SHARED, 'models/bert-tiny-random');
const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');

describe('Hugging Face tokenizer (bert-tiny-random/tokenizer.json)', () => {
  let vocab: string[];
  const id = (token: string) => {
    const at = vocab.indexOf(token);
    expect(at, token).toBeGreaterThanOrEqual(0);
    return at;
  };
  beforeAll(async () => {
    vocab = (await readFile(join(BERT_TINY, 'vocab.txt'), 'utf8')).split('\n');
  });

  it('gives the ids of the vocabulary lines: lower-cased words, punctuation split, [CLS] … [SEP]', async () => {
    const tokenizer = await HfTokenizer.fromFolder(BERT_TINY);
    expect(tokenizer.encode('The cat sat.')).toEqual({ ids: [id('[CLS]'), id('the'), id('cat'), id('sat'), id('.'), id('[SEP]')], truncated: false });
    expect(tokenizer.encode('The cat sat.').ids).toEqual([2, 5, 5144, 3047, 7, 3]);
    // Not in the vocabulary, and no ## pieces to split it into: one [UNK].
    expect(tokenizer.encode('Zxqvbn, dogs!').ids).toEqual([id('[CLS]'), id('[UNK]'), id(','), id('dogs'), id('!'), id('[SEP]')]);
    expect(tokenizer.maxLength).toBe(512);
    expect(tokenizer.padId).toBe(id('[PAD]'));
  });

  it('truncates at the maximum length, keeping [SEP]', async () => {
    const tokenizer = await HfTokenizer.fromFolder(BERT_TINY, 5);
    expect(tokenizer.encode('The cat sat.')).toEqual({ ids: [id('[CLS]'), id('the'), id('cat'), id('sat'), id('[SEP]')], truncated: true });
    expect(tokenizer.encode('The cat').truncated).toBe(false);
  });
});

describe('pooling', () => {
  it('averages token vectors over the attention mask only', () => {
    // batch 2 × 3 tokens × dim 2; the first sequence's last token is padding.
    const hidden = Float32Array.from([1, 2, 3, 4, 100, 100, 0, 0, -2, 6, 4, 0]);
    const mask = [1, 1, 0, 1, 1, 1];
    expect(Array.from(maskedMeanPool(hidden, mask, 2, 3, 2))).toEqual([2, 3, Math.fround(2 / 3), 2]);
    expect(Array.from(maskedMeanPool(hidden, [0, 0, 0, 1, 0, 0], 2, 3, 2))).toEqual([0, 0, 0, 0]);
    expect(Array.from(firstTokenPool(hidden, 2, 3, 2))).toEqual([1, 2, 0, 0]);
  });

  it('normalises rows to unit length and leaves zero rows alone', () => {
    expect(Array.from(l2NormalizeRows(Float32Array.from([3, 4, 0, 0, 0, 0, -1, 0]), 2))).toEqual([0.6, 0.8, 0, 0, 0, 0, -1, 0].map(Math.fround));
  });

  it('weights words by a / (a + p(w)), p(w) from Zipf ranks', () => {
    const a = 0.01;
    const harmonic = 1 + 1 / 2 + 1 / 3 + 1 / 4;
    const expected = [1, 2, 3, 4].map((rank) => a / (a + 1 / (rank * harmonic)));
    expect(Array.from(sifWeights(4, a))).toEqual(expected.map(Math.fround));
    const vectors = Float32Array.from([1, 0, 0, 1, 2, 2, 5, 5]);
    const out = new Float32Array(2);
    poolWordVectors([0, 2, 2], vectors, 2, sifWeights(4, a), out, 0);
    const w = sifWeights(4, a);
    expect(out[0]).toBeCloseTo((w[0]! * 1 + 2 * w[2]! * 2) / 3, 6);
    expect(out[1]).toBeCloseTo((2 * w[2]! * 2) / 3, 6);
  });
});

describe('word vectors', () => {
  const table: WordVectorTable = {
    words: ['the', 'cat', 'sat', 'not', 'well-known'],
    vocabulary: new Map(['the', 'cat', 'sat', 'not', 'well-known'].map((w, i) => [w, i])),
    vectors: Float32Array.from([1, 0, 0, 1, 2, -2, -1, 3, 4, 4]),
    dim: 2,
    sha256: 'test',
    origin: 'test',
  };

  it('tokenises as documented: entities, clitics, abbreviations, numbers, hyphens', () => {
    expect(wordTokens("It #39;s the U.S. team's 1,000.5 doesn't can't won't &amp; “Hi”")).toEqual([
      'it', "'s", 'the', 'u.s.', 'team', "'s", '1,000.5', 'does', "n't", 'can', "n't", 'will', "n't", '&', '“', 'hi', '”',
    ]);
    // n't becomes "not" when the vocabulary lacks it; unknown words and 's are dropped; a hyphenated word is looked up whole, else by parts.
    expect(wordIds("The cat didn't sit, the well-known cat-sat", table.vocabulary)).toEqual({ ids: Int32Array.from([0, 1, 3, 0, 4, 1, 2]), unknown: 3 });
  });

  it('pools the SIF mean, the max and the min of the words', async () => {
    const backbone = new WordVectorBackbone('tiny', table, WORD_VECTOR_DEFAULTS);
    expect(backbone.reference.featureDim).toBe(6);
    const [features] = [await backbone.forward([await backbone.prepare('the cat sat'), await backbone.prepare('zzz')])];
    const w = sifWeights(5, WORD_VECTOR_DEFAULTS.sifA);
    const mean = [(w[0]! * 1 + w[2]! * 2) / 3, (w[1]! * 1 - w[2]! * 2) / 3];
    expect(features![0]).toBeCloseTo(mean[0]!, 6);
    expect(features![1]).toBeCloseTo(mean[1]!, 6);
    expect(Array.from(features!.subarray(2, 6))).toEqual([2, 1, 0, -2]);
    expect(Array.from(features!.subarray(6))).toEqual([0, 0, 0, 0, 0, 0]); // no known word
    const plain = new WordVectorBackbone('tiny', table, { ...WORD_VECTOR_DEFAULTS, pooling: 'mean', normalize: true });
    const [x, y] = await plain.forward([await plain.prepare('cat not')]);
    expect([x, y]).toEqual([-1 / Math.sqrt(17), 4 / Math.sqrt(17)].map(Math.fround));
  });

  it('streams wink-style JSON across chunk boundaries, whatever the words are', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'headstart-wink-'));
    const path = join(dir, 'wink.json');
    await writeFile(
      path,
      JSON.stringify({
        precision: 8,
        l2NormIndex: 2,
        wordIndex: 3,
        size: 3,
        dimensions: 2,
        words: ['the', 'vectors', '"q', 'é'],
        vectors: { vectors: [3, -4, 5, 1], the: [1, 2.5e-3, 2.2, 0], '"q': [0.5, -0.001, 1, 2], é: [7, 8, 9, 3] },
        unkVector: [0, 0, -1],
      }),
    );
    for (const chunk of [3, 7, 1 << 20]) {
      const parsed = await streamWinkJson(path, () => {}, chunk);
      expect(parsed.words).toEqual(['the', 'vectors', '"q', 'é']);
      expect(parsed.dim).toBe(2);
      expect(Array.from(parsed.vectors)).toEqual([1, 2.5e-3, 3, -4, 0.5, -0.001, 7, 8].map(Math.fround));
    }
  });
});

describe('TF-IDF', () => {
  const settings = { wordNgrams: [1, 1] as [number, number], charNgrams: null, minDf: 1, maxFeatures: 100, sublinearTf: false };
  const docs = ['cat sat', 'cat cat dog', 'dog ran'];

  it('matches hand-computed smooth idf and L2-normalised counts on three documents', () => {
    const map = TfidfFeatureMap.fit(docs, settings);
    expect(map.state.terms).toEqual(['w:cat', 'w:dog', 'w:ran', 'w:sat']);
    const idf = (df: number) => Math.log((1 + 3) / (1 + df)) + 1;
    expect(map.state.idf).toEqual([idf(2), idf(2), idf(1), idf(1)]);
    const catDog = [2 * idf(2), idf(2)];
    const norm = Math.hypot(...catDog);
    expect(Array.from(map.transform('cat cat dog'))).toEqual([catDog[0]! / norm, catDog[1]! / norm, 0, 0].map(Math.fround));
    const catSat = Math.hypot(idf(2), idf(1));
    expect(Array.from(map.transform('Cat sat, unseen'))).toEqual([idf(2) / catSat, 0, 0, idf(1) / catSat].map(Math.fround));
    const sublinear = TfidfFeatureMap.fit(docs, { ...settings, sublinearTf: true });
    const tf = 1 + Math.log(2);
    const row = sublinear.transform('cat cat dog');
    expect(row[0]).toBeCloseTo((tf * idf(2)) / Math.hypot(tf * idf(2), idf(2)), 6);
  });

  it('keeps the most frequent terms, and makes character n-grams as scikit-learn char_wb does', () => {
    expect(TfidfFeatureMap.fit(docs, { ...settings, maxFeatures: 2 }).state.terms).toEqual(['w:cat', 'w:dog']);
    expect(termsOf('ab', { wordNgrams: null, charNgrams: [2, 4] })).toEqual(['c: a', 'c:ab', 'c:b ', 'c: ab', 'c:ab ', 'c: ab ']);
    expect(termsOf('Good movie, a', { wordNgrams: [1, 2], charNgrams: null })).toEqual(['w:good', 'w:movie', 'w:good movie']);
  });
});

describe('transformer encoder (bert-tiny-random)', () => {
  let backbone: TransformerTextBackbone;
  beforeAll(async () => {
    backbone = (await openTextBackbone(BERT_TINY, { cacheDir: tmpdir(), threads: 1 })) as TransformerTextBackbone;
  });
  afterAll(async () => {
    await backbone?.dispose();
  });

  it('pools last_hidden_state over the mask, so padding and batch order do not change a text\'s features', async () => {
    expect(backbone.reference.featureDim).toBe(128);
    expect(backbone.preprocessing).toMatchObject({ kind: 'text-transformer', pooling: 'mean', normalize: false, maxLength: 512 });
    const short = await backbone.prepare('the cat sat .');
    const long = await backbone.prepare('a second sentence that is somewhat longer than the first one , to force padding in a batch .');
    const alone = await backbone.forward([short]);
    const batch = await backbone.forward([short, long, short]);
    for (let d = 0; d < 128; d++) {
      expect(batch[d]).toBeCloseTo(alone[d]!, 5);
      expect(batch[256 + d]).toBeCloseTo(alone[d]!, 5);
    }
    expect(Array.from(batch.subarray(128, 256))).not.toEqual(Array.from(alone));
  });

  it('takes CLS pooling and L2 normalisation when asked', async () => {
    const cls = (await openTextBackbone(BERT_TINY, { cacheDir: tmpdir(), threads: 1, preprocessing: { pooling: 'cls', normalize: true, maxLength: 8 } })) as TransformerTextBackbone;
    try {
      const features = await cls.forward([await cls.prepare('the cat sat on the mat with a hat and a bat')]);
      expect(Math.hypot(...features)).toBeCloseTo(1, 5);
      expect(cls.preprocessing).toMatchObject({ pooling: 'cls', normalize: true, maxLength: 8 });
      expect((await cls.prepare('the cat sat on the mat with a hat')).truncated).toBe(true);
    } finally {
      await cls.dispose();
    }
  });

  it("follows the folder's sentence-transformers recipe (modules.json): CLS pooling, normalisation, length", async () => {
    // The same weights, described as a sentence-transformers export that pools the CLS token and normalises.
    const folder = await mkdtemp(join(tmpdir(), 'headstart-st-'));
    await cp(BERT_TINY, folder, { recursive: true });
    await mkdir(join(folder, '1_Pooling'));
    await writeFile(join(folder, '1_Pooling/config.json'), JSON.stringify({ word_embedding_dimension: 128, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }));
    await writeFile(join(folder, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 16 }));
    await writeFile(
      join(folder, 'modules.json'),
      JSON.stringify([
        { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
        { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
        { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
      ]),
    );
    const recipe = (await openTextBackbone(folder, { cacheDir: tmpdir(), threads: 1 })) as TransformerTextBackbone;
    const asked = (await openTextBackbone(BERT_TINY, { cacheDir: tmpdir(), threads: 1, preprocessing: { pooling: 'cls', normalize: true, maxLength: 16 } })) as TransformerTextBackbone;
    try {
      expect(recipe.preprocessing).toMatchObject({ pooling: 'cls', normalize: true, maxLength: 16 });
      const text = 'the cat sat on the mat .';
      const fromRecipe = await recipe.forward([await recipe.prepare(text)]);
      expect(Array.from(fromRecipe)).toEqual(Array.from(await asked.forward([await asked.prepare(text)])));
      expect(Math.hypot(...fromRecipe)).toBeCloseTo(1, 5);
      // And the user still has the last word.
      const overridden = (await openTextBackbone(folder, { cacheDir: tmpdir(), threads: 1, preprocessing: { pooling: 'mean', normalize: false } })) as TransformerTextBackbone;
      expect(overridden.preprocessing).toMatchObject({ pooling: 'mean', normalize: false });
      await overridden.dispose();
    } finally {
      await recipe.dispose();
      await asked.dispose();
    }
  });
});

describe('transformer encoder from hf: (a local Hub lookalike serving bert-tiny-random)', () => {
  it('pulls the repository, pins the commit in the id, and opens it again offline', async () => {
    const server = await startHubServer(HUB_FIXTURES);
    const hubCache = await hubTempDir();
    try {
      const backbone = await openTextBackbone(`hf:${BERT}`, { cacheDir: tmpdir(), threads: 1, hub: { endpoint: server.url, cacheDir: hubCache } });
      expect(backbone.reference.id).toBe(`hf:${BERT}@${server.commitOf(BERT)}`);
      expect(backbone.reference.featureDim).toBe(128);
      await backbone.dispose();
      const offline = await openTextBackbone(backbone.reference.id, { cacheDir: tmpdir(), threads: 1, hub: { offline: true, cacheDir: hubCache } });
      expect(offline.reference.sha256).toBe(backbone.reference.sha256);
      await offline.dispose();
    } finally {
      await server.close();
    }
  });
});

describe('pooling a backbone cannot do', () => {
  it('is a usage error naming what the backbone can do', async () => {
    await expect(openTextBackbone(GLOVE_20K, { cacheDir: tmpdir(), preprocessing: { pooling: 'mean-max' as never } })).rejects.toMatchObject({
      kind: 'usage',
      message: expect.stringMatching(/pooling "mean-max" is not for word vectors, which pool with mean, sif or sif\+max\+min/),
    });
    await expect(openTextBackbone(BERT_TINY, { cacheDir: tmpdir(), preprocessing: { pooling: 'sif' } })).rejects.toMatchObject({
      kind: 'usage',
      message: expect.stringMatching(/pooling "sif" is not for transformers, which pool with mean or cls/),
    });
  });
});

describe('a fill-mask export', () => {
  it('is refused rather than pooling its vocabulary scores as features', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'headstart-fill-mask-'));
    await mkdir(join(folder, 'onnx'));
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt']) await cp(join(BERT_TINY, file), join(folder, file));
    const graph = new OnnxGraph();
    const ids = graph.addInput('input_ids', [-1, -1], 'int64');
    const scores = graph.addNode('Unsqueeze', [graph.addNode('Cast', [ids], { to: attr.int(1) }), graph.addInt64Initializer('axes', [2])], {}, 'logits');
    graph.outputs = [{ name: scores, shape: [-1, -1, 1] }];
    await writeFile(join(folder, 'onnx/model.onnx'), encodeModel(graph, 'fill_mask', 'test'));
    await expect(openTextBackbone(folder, { cacheDir: tmpdir(), threads: 1 })).rejects.toThrow(/outputs only "logits" \(vocabulary scores per token: a fill-mask export\), not token vectors/);
  });
});
