import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firstInvalidUtf8, readLabelledTexts, readTextDataset, readTextLines, readTextRecords } from '../src/data/text-dataset.js';
import { HeadstartError } from '../src/util/errors.js';

async function write(name: string, content: string | Uint8Array): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'headstart-text-'));
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function failure(promise: Promise<unknown>): Promise<HeadstartError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(HeadstartError);
  return error as HeadstartError;
}

describe('CSV', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks, numbering rows by their first line', async () => {
    const file = await write('reviews.csv', 'text,label\n"Great, really ""great""\nsecond line",pos\nplain text,neg\n\n"last one",pos\n');
    const { records, skipped } = await readTextRecords(file);
    expect(skipped).toEqual([]);
    expect(records).toEqual([
      { text: 'Great, really "great"\nsecond line', label: 'pos', source: `${file}:2` },
      { text: 'plain text', label: 'neg', source: `${file}:4` },
      { text: 'last one', label: 'pos', source: `${file}:6` },
    ]);
  });

  it('detects a header by its column names, or by a first label that never recurs', async () => {
    const named = await readTextRecords(await write('a.csv', 'label,review\n1,good\n0,bad\n1,fine\n'));
    expect(named.records.map((r) => [r.label, r.text])).toEqual([['1', 'good'], ['0', 'bad'], ['1', 'fine']]);
    const unnamed = await readTextRecords(await write('b.csv', 'blurb,verdict\nquite good indeed,yes\nvery bad indeed,no\nokay-ish overall,yes\n'));
    expect(unnamed.records.map((r) => r.label)).toEqual(['yes', 'no', 'yes']);
    // No header: the first row is data; label = fewest distinct values, text = longest values.
    const none = await readTextRecords(await write('c.csv', 'yes,quite good indeed\nno,very bad indeed\nyes,okay overall\n'));
    expect(none.records.map((r) => [r.label, r.text])).toEqual([['yes', 'quite good indeed'], ['no', 'very bad indeed'], ['yes', 'okay overall']]);
  });

  it('takes the columns asked for, by name or 0-based index', async () => {
    const file = await write('d.csv', 'id,title,body,topic\n1,Hello,first body,a\n2,Bye,second body,b\n');
    const byName = await readTextRecords(file, { textColumn: 'title', labelColumn: 'topic' });
    expect(byName.records.map((r) => [r.text, r.label])).toEqual([['Hello', 'a'], ['Bye', 'b']]);
    const byIndex = await readTextRecords(file, { textColumn: 2, labelColumn: '3' });
    expect(byIndex.records.map((r) => [r.text, r.label])).toEqual([['first body', 'a'], ['second body', 'b']]);
    expect((await failure(readTextRecords(file, { textColumn: 'nope' }))).message).toMatch(/no column named "nope".*columns: id, title, body, topic/);
  });

  it('reports and skips rows with a missing label, an empty text or the wrong number of fields', async () => {
    const file = await write('e.csv', 'text,label\ngood,pos\nno label here,\n   ,neg\ntoo,many,fields\nbad,neg\n');
    const { records, skipped } = await readTextRecords(file);
    expect(records.map((r) => r.text)).toEqual(['good', 'bad']);
    expect(skipped).toEqual([
      { source: `${file}:3`, reason: 'missing label' },
      { source: `${file}:4`, reason: 'empty text' },
      { source: `${file}:5`, reason: 'expected 2 fields, found 3' },
    ]);
  });

  it('rejects invalid UTF-8 naming the file and line', async () => {
    const bytes = new Uint8Array([...Buffer.from('text,label\nfine,a\ncaf'), 0xe9, ...Buffer.from(',b\n')]);
    const file = await write('latin1.csv', bytes);
    const error = await failure(readTextRecords(file));
    expect(error.kind).toBe('data');
    expect(error.file).toBe(`${file}:3`);
    expect(error.message).toMatch(/not valid UTF-8 \(byte 0xe9 at offset 21\)/);
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xc3, 0xa9, 0xed, 0xa0, 0x80]))).toBe(3); // a surrogate is invalid
    expect(firstInvalidUtf8(new Uint8Array([0xc0, 0x80]))).toBe(0); // overlong
  });

  it('names the line of an unterminated quote', async () => {
    const file = await write('f.csv', 'text,label\nok,a\n"never closed,b\nmore,a\n');
    const error = await failure(readTextRecords(file));
    expect(error.message).toMatch(/cannot parse: .*[Qq]uote/);
    expect(error.file).toMatch(/f\.csv:\d+$/);
  });
});

describe('TSV', () => {
  it('reads label-first files without a header, quoted fields and quotes that are just text', async () => {
    const file = await write('sms.tsv', 'ham\tok see you\nspam\t"WIN ""cash"" now"\nham\t"tell him" later..\nham\thi\n');
    const { records } = await readTextRecords(file);
    expect(records.map((r) => [r.label, r.text])).toEqual([
      ['ham', 'ok see you'],
      ['spam', 'WIN "cash" now'],
      ['ham', '"tell him" later..'],
      ['ham', 'hi'],
    ]);
  });

  it('reads lines separately when an unclosed quote would swallow whole records', async () => {
    // As in the UCI SMS file: a field opens a quote that only a later line closes.
    const file = await write('SMSSpamCollection', 'ham\t"Keep calm..\nham\tcall me\nspam\tFREE "prize"\nham\tfine"\n');
    const { records } = await readTextRecords(file);
    expect(records.map((r) => [r.label, r.text, r.source.split(':').pop()])).toEqual([
      ['ham', '"Keep calm..', '1'],
      ['ham', 'call me', '2'],
      ['spam', 'FREE "prize"', '3'],
      ['ham', 'fine"', '4'],
    ]);
  });

  it('keeps a genuine multi-line quoted field', async () => {
    const file = await write('g.tsv', 'text\tlabel\n"two\nlines"\ta\none line\tb\n');
    const { records } = await readTextRecords(file);
    expect(records.map((r) => [r.text, r.label, r.source.split(':').pop()])).toEqual([
      ['two\nlines', 'a', '2'],
      ['one line', 'b', '4'],
    ]);
  });
});

describe('JSONL and folders', () => {
  it('reads JSONL by field names and names the line of bad JSON', async () => {
    const good = await write('a.jsonl', '{"text": "hello", "label": "greet"}\n\n{"sentence": "bye", "label": 2}\n{"text": "none", "label": null}\n');
    const { records, skipped } = await readTextRecords(good);
    expect(records.map((r) => [r.text, r.label, r.source])).toEqual([
      ['hello', 'greet', `${good}:1`],
      ['bye', '2', `${good}:3`],
    ]);
    expect(skipped).toEqual([{ source: `${good}:4`, reason: 'missing label' }]);
    const bad = await write('b.jsonl', '{"text": "fine", "label": "a"}\n{"text": "broken", "label": \n');
    const error = await failure(readTextRecords(bad));
    expect(error.file).toBe(`${bad}:2`);
    expect(error.message).toMatch(/not valid JSON/);
  });

  it('reads a folder per class of .txt files, and split files with dev and test beside train', async () => {
    const root = await mkdtemp(join(tmpdir(), 'headstart-text-folders-'));
    for (const [label, texts] of Object.entries({ neg: ['bad', 'awful', 'poor'], pos: ['good', 'great', 'fine'] })) {
      await mkdir(join(root, label));
      for (const [i, text] of texts.entries()) await writeFile(join(root, label, `${i}.txt`), `${text}\n`);
    }
    await writeFile(join(root, 'pos', 'empty.txt'), '  \n');
    await writeFile(join(root, 'pos', 'notes.md'), 'not data');
    const dataset = await readTextDataset(root, { validationFraction: 0.34, seed: 1 });
    expect(dataset.classes).toEqual(['neg', 'pos']);
    expect(dataset.train.length + dataset.validation.length).toBe(6);
    expect(dataset.skipped.map((s) => s.reason).sort()).toEqual(['empty text', 'not a .txt file']);
    expect(await dataset.train[0]!.load()).toMatch(/^\w+$/);

    const splits = await mkdtemp(join(tmpdir(), 'headstart-text-splits-'));
    await writeFile(join(splits, 'train.csv'), 'text,label\na,x\nb,y\nc,x\nd,y\n');
    await writeFile(join(splits, 'dev.csv'), 'text,label\ne,x\nf,y\n');
    await writeFile(join(splits, 'test.csv'), 'text,label\ng,y\n');
    const given = await readTextDataset(splits);
    expect([given.train.length, given.validation.length, given.test?.length, given.validationSource]).toEqual([4, 2, 1, 'given']);
  });

  it('holds out a stratified, seeded test share; numeric labels sort numerically; unknown labels are errors', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => `text number ${i},${i % 4 === 0 ? 10 : 2}`);
    const file = await write('n.csv', `text,label\n${rows.join('\n')}\n`);
    const a = await readTextDataset(file, { testFraction: 0.25, seed: 3 });
    const b = await readTextDataset(file, { testFraction: 0.25, seed: 3 });
    expect(a.classes).toEqual(['2', '10']);
    expect(a.test!.map((i) => i.source)).toEqual(b.test!.map((i) => i.source));
    expect(a.test!.filter((i) => i.label === 1)).toHaveLength(3); // 25 % of the 10 "10"s, rounded
    expect(a.test!.length + a.train.length + a.validation.length).toBe(40);
    const error = await failure(readLabelledTexts(await write('u.csv', 'text,label\nx,2\ny,7\n'), ['2', '10']));
    expect(error.message).toMatch(/label "7" not among the classes \(2, 10\)/);
  });

  it('reads one text per non-empty line for predict --file', async () => {
    expect(await readTextLines(await write('lines.txt', 'first text\r\n\nsecond, with comma\n'))).toEqual(['first text', 'second, with comma']);
  });
});
