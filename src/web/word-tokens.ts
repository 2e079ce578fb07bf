/**
 * The tokeniser of word-vector text models (GloVe), shared by the library (training, `predict`) and
 * `headstart/web` (exported models tokenise in the browser): one implementation, so an exported
 * model sees exactly the word ids the library saw. Pure TypeScript: no Node built-ins, no DOM.
 */

/** Names the rules of `wordTokens`; bumped when they change so cached features are recomputed and old exports refused. */
export const WORD_TOKENIZER_VERSION = 'glove-words-1';

/** Clitics GloVe's vocabulary may lack, and the word each stands for. */
const CLITICS: Record<string, string | undefined> = { "n't": 'not', "'re": 'are', "'ve": 'have', "'ll": 'will', "'m": 'am', "'d": 'would', "'s": undefined };

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/**
 * The tokenizer for word vectors (GloVe was trained on lower-cased, Stanford-tokenised text):
 *  1. HTML entities are decoded (`&amp;`, `&#39;`, and `#39;` whose ampersand scrapers dropped);
 *     Unicode NFKC, curly apostrophes to `'`, lower case.
 *  2. Negations split off as Penn Treebank does: `doesn't` → `does n't`, `can't` → `can n't`,
 *     `won't` → `will n't`; other clitics too (`it's` → `it 's`).
 *  3. Tokens: abbreviations with dots (`u.s.`), words (letters, digits, inner `'` and `-`),
 *     numbers (`1,000.5`), and every other non-space character alone.
 *  4. Lookup: a token missing from the vocabulary is tried as its parts (a hyphenated word), and a
 *     clitic missing from it as the word it stands for (`n't` → `not`, `'re` → `are`); what is still
 *     unknown is dropped.
 */
export function wordTokens(text: string): string[] {
  const normalised = decodeEntities(text)
    .normalize('NFKC')
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .toLowerCase()
    .replace(/\bcan't\b/g, "can n't")
    .replace(/\bwon't\b/g, "will n't")
    .replace(/(\p{L})n't\b/gu, "$1 n't")
    .replace(/(\p{L})'(s|re|ve|ll|m|d)\b/gu, "$1 '$2");
  return normalised.match(WORD_TOKEN) ?? [];
}

const WORD_TOKEN = /n't|'(?:s|re|ve|ll|m|d)\b|(?:\p{L}\.){2,}|\p{N}+(?:[.,]\p{N}+)+|[\p{L}\p{N}]+(?:['-][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu;

function decodeEntities(text: string): string {
  if (!text.includes('&') && !text.includes('#')) return text;
  return text
    .replace(/&(amp|lt|gt|quot|apos|nbsp);/g, (_, name: string) => NAMED_ENTITIES[name]!)
    .replace(/&?#(\d{2,5});/g, (_, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&#x([0-9a-f]{1,5});/gi, (_, code: string) => String.fromCodePoint(parseInt(code, 16)));
}

/** Vocabulary ids of a text's tokens (see {@link wordTokens}); `unknown` counts what was dropped. */
export function wordIds(text: string, vocabulary: Map<string, number>): { ids: Int32Array; unknown: number } {
  const ids: number[] = [];
  let unknown = 0;
  for (const token of wordTokens(text)) {
    const id = vocabulary.get(token);
    if (id !== undefined) {
      ids.push(id);
      continue;
    }
    if (token in CLITICS) {
      const word = CLITICS[token];
      const wordId = word === undefined ? undefined : vocabulary.get(word);
      if (wordId !== undefined) ids.push(wordId);
      else unknown++;
      continue;
    }
    let found = false;
    if (token.includes('-') || token.includes("'")) {
      for (const part of token.split(/['-]/)) {
        const partId = vocabulary.get(part);
        if (partId !== undefined) {
          ids.push(partId);
          found = true;
        }
      }
    }
    if (!found) unknown++;
  }
  return { ids: Int32Array.from(ids), unknown };
}
