import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { dataError } from '../util/errors.js';
import type { HfTokenizer } from '../backbones/text-tokenizers.js';

/** One training document: plain text (every token is a target), or a prompt and the completion the loss is on. */
export type LmDocument = { text: string; source: string } | { prompt: string; completion: string; source: string };

/**
 * Reads training texts: a `.txt` file or a folder of them (recursively, in name order; documents
 * split on blank lines), or `.jsonl` with one `{"text"}` or `{"prompt", "completion"}` object a line.
 * Invalid UTF-8 is an error naming the file and line; so is a corpus with no text.
 */
export async function readCorpus(path: string): Promise<LmDocument[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw dataError('no such file or folder', path);
  const files = info.isDirectory() ? await textFiles(path) : [path];
  if (info.isDirectory() && files.length === 0) throw dataError('no .txt or .jsonl files in this folder', path);
  const documents: LmDocument[] = [];
  for (const file of files) {
    const text = decodeUtf8(await readFile(file), file);
    if (extname(file).toLowerCase() === '.jsonl') documents.push(...jsonlDocuments(text, file));
    else documents.push(...text.split(/\r?\n[ \t]*\r?\n/).map((d) => d.trim()).filter((d) => d.length > 0).map((d) => ({ text: d, source: file })));
  }
  if (documents.length === 0) throw dataError('the corpus is empty: no text to train on', path);
  return documents;
}

async function textFiles(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  const files: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await textFiles(path)));
    else if (['.txt', '.jsonl'].includes(extname(entry.name).toLowerCase())) files.push(path);
  }
  return files;
}

/** Strict UTF-8; on failure, finds the first line that does not decode. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i === bytes.length || bytes[i] === 0x0a) {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, i));
        } catch {
          throw dataError(`line ${line}: not valid UTF-8 (save the file as UTF-8)`, file);
        }
        line++;
        start = i + 1;
      }
    }
    throw dataError('not valid UTF-8', file);
  }
}

function jsonlDocuments(text: string, file: string): LmDocument[] {
  const documents: LmDocument[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!line) return;
    let value: any;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw dataError(`line ${index + 1}: not valid JSON (${(error as Error).message})`, file);
    }
    const at = `line ${index + 1}`;
    if (typeof value?.text === 'string') {
      if (value.text.trim()) documents.push({ text: value.text, source: `${file}:${index + 1}` });
    } else if (typeof value?.prompt === 'string' && typeof value?.completion === 'string') {
      if (!value.completion) throw dataError(`${at}: empty "completion"`, file);
      documents.push({ prompt: value.prompt, completion: value.completion, source: `${file}:${index + 1}` });
    } else {
      throw dataError(`${at}: expected {"text": "…"} or {"prompt": "…", "completion": "…"}`, file);
    }
  });
  return documents;
}

/** Token blocks of the context length; `targets[i]` is 1 where token i+1 is predicted by the loss. */
export interface PackedCorpus {
  blockLength: number;
  /** blocks × blockLength token ids. */
  ids: Int32Array;
  /** blocks × blockLength: whether the token at this position is a target (its prediction from the previous position counts). */
  targets: Uint8Array;
  blocks: number;
  tokens: number;
  documents: number;
  /** Documents longer than a block, which were split across blocks (prompt/completion pairs keep their prompt with each piece only in the first). */
  chunked: number;
}

/**
 * Tokenises documents and packs them, separated by EOS, into blocks of `blockLength` tokens, as
 * transformers' run_clm groups texts: plain text is a target everywhere; for prompt/completion pairs
 * only the completion and its closing EOS are. The tail shorter than a block is dropped unless it
 * is all there is (then it is padded, the padding not a target).
 */
export function packCorpus(documents: readonly LmDocument[], tokenizer: HfTokenizer, blockLength: number, eos: number): PackedCorpus {
  const ids: number[] = [];
  const targets: number[] = [];
  let chunked = 0;
  for (const document of documents) {
    let length: number;
    if ('text' in document) {
      const tokens = [...tokenizer.ids(document.text), eos];
      ids.push(...tokens);
      targets.push(...tokens.map(() => 1));
      length = tokens.length;
    } else {
      const prompt = tokenizer.ids(document.prompt);
      const completion = [...tokenizer.ids(document.completion), eos];
      ids.push(...prompt, ...completion);
      targets.push(...prompt.map(() => 0), ...completion.map(() => 1));
      length = prompt.length + completion.length;
    }
    if (length > blockLength) chunked++;
  }
  let blocks = Math.floor(ids.length / blockLength);
  if (blocks === 0) {
    blocks = 1;
    while (ids.length < blockLength) {
      ids.push(eos);
      targets.push(0);
    }
  }
  const n = blocks * blockLength;
  const packedTargets = Uint8Array.from(targets.slice(0, n));
  // The first position of a block has no context inside it: never a target.
  for (let b = 0; b < blocks; b++) packedTargets[b * blockLength] = 0;
  return { blockLength, ids: Int32Array.from(ids.slice(0, n)), targets: packedTargets, blocks, tokens: ids.length, documents: documents.length, chunked };
}
