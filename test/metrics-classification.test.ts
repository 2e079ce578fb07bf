import { describe, expect, it } from 'vitest';
import { computeMetrics, formatMetricsTable, logLoss } from '../src/evaluate/metrics.js';
import { HeadstartError } from '../src/util/errors.js';

/** Row-major probabilities from rows of numbers (all dyadic, so exact in float32). */
function probabilities(rows: number[][]): Float32Array {
  return Float32Array.from(rows.flat());
}

// Three classes, ten examples. Predicted class = the 0.5 or 0.75 entry of each row.
//
//   true cat  (4): predicted cat, cat, dog, bird
//   true dog  (3): predicted cat, dog, dog
//   true bird (3): predicted dog, dog, bird
//
// Confusion [true][predicted]:   cat dog bird
//                          cat     2   1   1     support 4
//                          dog     1   2   0     support 3
//                          bird    0   2   1     support 3
//                  predicted:      3   5   2
const labels = ['cat', 'dog', 'bird'];
const trueLabels = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
const probs = probabilities([
  [0.75, 0.125, 0.125], // cat → cat      p(true) = 0.75
  [0.5, 0.25, 0.25], //    cat → cat      0.5
  [0.25, 0.5, 0.25], //    cat → dog      0.25
  [0.25, 0.25, 0.5], //    cat → bird     0.25
  [0.5, 0.25, 0.25], //    dog → cat      0.25
  [0.125, 0.75, 0.125], // dog → dog      0.75
  [0.25, 0.5, 0.25], //    dog → dog      0.5
  [0.125, 0.75, 0.125], // bird → dog     0.125
  [0.25, 0.5, 0.25], //    bird → dog     0.25
  [0.25, 0.25, 0.5], //    bird → bird    0.5
]);

describe('computeMetrics', () => {
  const m = computeMetrics(trueLabels, probs, labels);

  it('builds the confusion matrix [true][predicted]', () => {
    expect(m.confusion).toEqual([
      [2, 1, 1],
      [1, 2, 0],
      [0, 2, 1],
    ]);
    expect(m.n).toBe(10);
    expect(m.labels).toEqual(labels);
  });

  it('computes per-class precision, recall, F1 and support', () => {
    // precision = TP / predicted, recall = TP / support, F1 = 2PR / (P + R)
    // cat:  P = 2/3, R = 2/4 = 1/2, F1 = (2·2/3·1/2)/(2/3 + 1/2) = (2/3)/(7/6) = 4/7
    // dog:  P = 2/5, R = 2/3,       F1 = (2·2/5·2/3)/(2/5 + 2/3) = (8/15)/(16/15) = 1/2
    // bird: P = 1/2, R = 1/3,       F1 = (2·1/2·1/3)/(1/2 + 1/3) = (1/3)/(5/6) = 2/5
    const expected = [
      { label: 'cat', precision: 2 / 3, recall: 1 / 2, f1: 4 / 7, support: 4 },
      { label: 'dog', precision: 2 / 5, recall: 2 / 3, f1: 1 / 2, support: 3 },
      { label: 'bird', precision: 1 / 2, recall: 1 / 3, f1: 2 / 5, support: 3 },
    ];
    m.perClass.forEach((c, i) => {
      expect(c.label).toBe(expected[i].label);
      expect(c.support).toBe(expected[i].support);
      expect(c.precision).toBeCloseTo(expected[i].precision, 12);
      expect(c.recall).toBeCloseTo(expected[i].recall, 12);
      expect(c.f1).toBeCloseTo(expected[i].f1, 12);
    });
  });

  it('computes accuracy, macro and weighted averages', () => {
    // accuracy = (2 + 2 + 1) / 10
    expect(m.accuracy).toBeCloseTo(1 / 2, 12);
    // macro P = (2/3 + 2/5 + 1/2)/3 = (20 + 12 + 15)/30/3 = 47/90
    // macro R = (1/2 + 2/3 + 1/3)/3 = 1/2
    // macro F1 = (4/7 + 1/2 + 2/5)/3 = (40 + 35 + 28)/70/3 = 103/210
    expect(m.macro.precision).toBeCloseTo(47 / 90, 12);
    expect(m.macro.recall).toBeCloseTo(1 / 2, 12);
    expect(m.macro.f1).toBeCloseTo(103 / 210, 12);
    // weighted P = (4·2/3 + 3·2/5 + 3·1/2)/10 = (80 + 36 + 45)/30/10 = 161/300
    // weighted R = (4·1/2 + 3·2/3 + 3·1/3)/10 = 5/10 (always equals accuracy)
    // weighted F1 = (4·4/7 + 3·1/2 + 3·2/5)/10 = (160 + 105 + 84)/70/10 = 349/700
    expect(m.weighted.precision).toBeCloseTo(161 / 300, 12);
    expect(m.weighted.recall).toBeCloseTo(1 / 2, 12);
    expect(m.weighted.f1).toBeCloseTo(349 / 700, 12);
  });

  it('computes log loss as the mean −ln p(true class)', () => {
    // p(true): 0.75, 0.5, 0.25, 0.25, 0.25, 0.75, 0.5, 0.125, 0.25, 0.5
    // −ln: ln(4/3) ×2, ln 2 ×3, ln 4 ×4, ln 8 ×1  →  [2 ln(4/3) + 3 ln2 + 8 ln2 + 3 ln2] / 10
    const expected = (2 * Math.log(4 / 3) + 14 * Math.LN2) / 10;
    expect(m.logLoss).toBeCloseTo(expected, 12);
  });

  it('gives a never-predicted class precision 0 and F1 0 (sklearn zero_division=0)', () => {
    // Two classes predicted only as "a": b is never predicted.
    const r = computeMetrics(
      Int32Array.from([0, 0, 1]),
      probabilities([
        [0.75, 0.25],
        [0.75, 0.25],
        [0.5, 0.5], // a tie goes to the lower index: predicted a
      ]),
      ['a', 'b'],
    );
    expect(r.confusion).toEqual([
      [2, 0],
      [1, 0],
    ]);
    expect(r.perClass[1]).toEqual({ label: 'b', precision: 0, recall: 0, f1: 0, support: 1 });
    // a: P = 2/3, R = 1, F1 = (2·2/3)/(5/3) = 4/5
    expect(r.perClass[0].precision).toBeCloseTo(2 / 3, 12);
    expect(r.perClass[0].recall).toBe(1);
    expect(r.perClass[0].f1).toBeCloseTo(4 / 5, 12);
    expect(r.macro.precision).toBeCloseTo(1 / 3, 12);
    expect(r.macro.f1).toBeCloseTo(2 / 5, 12);
  });

  it('counts a class absent from the set in the macro average with zeros', () => {
    const r = computeMetrics(
      Int32Array.from([0, 1]),
      probabilities([
        [0.5, 0.25, 0.25],
        [0.25, 0.5, 0.25],
      ]),
      ['a', 'b', 'c'],
    );
    expect(r.perClass[2]).toEqual({ label: 'c', precision: 0, recall: 0, f1: 0, support: 0 });
    expect(r.macro.f1).toBeCloseTo(2 / 3, 12);
    expect(r.weighted.f1).toBe(1);
  });

  it('clips probabilities at 1e-15 so a zero probability gives a finite loss', () => {
    const loss = logLoss(Int32Array.from([1]), probabilities([[1, 0]]), 2);
    expect(loss).toBeCloseTo(-Math.log(1e-15), 12);
  });

  it('rejects mismatched inputs with a data error', () => {
    expect(() => computeMetrics(Int32Array.from([0, 1]), new Float32Array(3), ['a', 'b'])).toThrow(
      /expected 2×2 = 4 probabilities/,
    );
    expect(() => computeMetrics(Int32Array.from([2]), new Float32Array(2), ['a', 'b'])).toThrow(HeadstartError);
    expect(() => computeMetrics(new Int32Array(0), new Float32Array(0), ['a', 'b'])).toThrow(/at least one example/);
  });
});

describe('formatMetricsTable', () => {
  const m = computeMetrics(trueLabels, probs, labels);
  const text = formatMetricsTable(m);
  const lines = text.split('\n');
  const nonEmpty = lines.filter((line) => line.length > 0);

  it('aligns every line to the same width, without trailing spaces', () => {
    const widths = new Set(nonEmpty.map((line) => line.length));
    expect(widths.size).toBe(1);
    for (const line of nonEmpty) expect(line).toBe(line.trimEnd());
    // The number columns end at the same place on every report row.
    const header = nonEmpty[0];
    expect(header.endsWith('support')).toBe(true);
  });

  it('lists per-class rows, averages, accuracy and log loss in order', () => {
    const cells = (label: string) =>
      lines
        .find((line) => line.startsWith(`${label} `))!
        .slice(label.length)
        .trim()
        .split(/\s+/);
    expect(lines[0].trim().split(/\s+/)).toEqual(['class', 'precision', 'recall', 'f1-score', 'support']);
    expect(cells('cat')).toEqual(['0.6667', '0.5000', '0.5714', '4']);
    expect(cells('dog')).toEqual(['0.4000', '0.6667', '0.5000', '3']);
    expect(cells('bird')).toEqual(['0.5000', '0.3333', '0.4000', '3']);
    expect(cells('macro avg')).toEqual(['0.5222', '0.5000', '0.4905', '10']);
    expect(cells('weighted avg')).toEqual(['0.5367', '0.5000', '0.4986', '10']);
    expect(cells('accuracy')).toEqual(['0.5000', '10']);
    expect(cells('log loss')).toEqual([((2 * Math.log(4 / 3) + 14 * Math.LN2) / 10).toFixed(4), '10']);
    const order = ['cat', 'dog', 'bird', 'macro avg', 'weighted avg', 'accuracy', 'log loss'].map((label) =>
      lines.findIndex((line) => line.startsWith(`${label} `)),
    );
    expect(order).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // accuracy sits in the f1-score column: its value ends where the f1 values end
    const f1End = lines[1].indexOf('0.5714') + 6;
    expect(lines[6].indexOf('0.5000') + 6).toBe(f1End);
  });

  it('ends with the confusion matrix, labelled by true rows and predicted columns', () => {
    const blank = lines.indexOf('');
    expect(blank).toBe(8);
    const confusion = lines.slice(blank + 1);
    expect(confusion[0].startsWith('true \\ predicted')).toBe(true);
    expect(confusion[0].trim().split(/\s+/).slice(-3)).toEqual(['cat', 'dog', 'bird']);
    expect(confusion.slice(1).map((line) => line.trim().split(/\s+/))).toEqual([
      ['cat', '2', '1', '1'],
      ['dog', '1', '2', '0'],
      ['bird', '0', '2', '1'],
    ]);
    // counts are right-aligned under their column labels
    const birdColumnEnd = confusion[0].length;
    for (const row of confusion) expect(row.length).toBe(birdColumnEnd);
  });

  it('widens columns for long labels and keeps the alignment', () => {
    const long = computeMetrics(trueLabels, probs, ['a-rather-long-class-name', 'dog', 'b']);
    const longLines = formatMetricsTable(long)
      .split('\n')
      .filter((line) => line.length > 0);
    expect(new Set(longLines.map((line) => line.length)).size).toBe(1);
  });
});
