import { describe, expect, it, vi } from 'vitest';
import { MicroBatcher } from '../src/serve/batcher.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A batcher whose "model" doubles numbers and records every batch it was given. */
function doubler(maxBatch: number, maxWaitMs: number, delayMs = 0) {
  const batches: number[][] = [];
  const batcher = new MicroBatcher<number, number>(
    async (items) => {
      batches.push(items);
      if (delayMs) await sleep(delayMs);
      return items.map((x) => x * 2);
    },
    { maxBatch, maxWaitMs },
  );
  return { batcher, batches };
}

describe('MicroBatcher', () => {
  it('answers each item with its own result, in one batch when they arrive together', async () => {
    const { batcher, batches } = doubler(8, 20);
    expect(await Promise.all([1, 2, 3].map((x) => batcher.submit(x)))).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('starts a batch as soon as it is full, without waiting', async () => {
    const { batcher, batches } = doubler(2, 10_000);
    const started = performance.now();
    expect(await Promise.all([1, 2].map((x) => batcher.submit(x)))).toEqual([2, 4]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(batches).toEqual([[1, 2]]);
  });

  it('runs a lone item after at most maxWaitMs', async () => {
    const { batcher } = doubler(16, 30);
    const started = performance.now();
    expect(await batcher.submit(5)).toBe(10);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(25);
    expect(waited).toBeLessThan(1000);
  });

  it('runs a lone item at an idle batcher without waiting for a timer when maxWaitMs is 0', async () => {
    // Only setTimeout is faked: no timer may be pending once the item is submitted.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { batcher, batches } = doubler(16, 0);
      const answer = batcher.submit(5);
      expect(vi.getTimerCount()).toBe(0);
      expect(await answer).toBe(10);
      expect(batches).toEqual([[5]]);
    } finally {
      vi.runOnlyPendingTimers();
      vi.useRealTimers();
    }
  });

  it('puts items submitted in the same event-loop turn at an idle batcher into one batch, up to maxBatch', async () => {
    const { batcher, batches } = doubler(4, 0);
    expect(await Promise.all([1, 2, 3, 4, 5, 6].map((x) => batcher.submit(x)))).toEqual([2, 4, 6, 8, 10, 12]);
    expect(batches).toEqual([[1, 2, 3, 4], [5, 6]]);
  });

  it('queues items while a batch runs and takes up to maxBatch of them next, one batch at a time', async () => {
    const { batcher, batches } = doubler(3, 0, 30);
    const first = batcher.submit(0);
    await sleep(5);
    const rest = [1, 2, 3, 4, 5].map((x) => batcher.submit(x));
    expect(batcher.waiting).toBe(5);
    expect(await Promise.all([first, ...rest])).toEqual([0, 2, 4, 6, 8, 10]);
    expect(batches).toEqual([[0], [1, 2, 3], [4, 5]]);
  });

  it('fails every item of a failing batch, and keeps serving', async () => {
    let fail = true;
    const batcher = new MicroBatcher<number, number>(
      async (items) => {
        if (fail) throw new Error('backbone failed');
        return items;
      },
      { maxBatch: 4, maxWaitMs: 5 },
    );
    const results = await Promise.allSettled([1, 2].map((x) => batcher.submit(x)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await batcher.submit(7)).toBe(7);
  });

  it('drains: resolves once everything submitted has been answered', async () => {
    const { batcher } = doubler(2, 50, 10);
    const answers: number[] = [];
    for (const x of [1, 2, 3]) void batcher.submit(x).then((y) => answers.push(y));
    await batcher.drain();
    expect(answers.sort()).toEqual([2, 4, 6]);
    expect(batcher.waiting).toBe(0);
  });

  it('reports the size and duration of every batch', async () => {
    const seen: number[] = [];
    const batcher = new MicroBatcher<number, number>(async (items) => items, { maxBatch: 4, maxWaitMs: 5 }, (size, seconds) => {
      expect(seconds).toBeGreaterThanOrEqual(0);
      seen.push(size);
    });
    await Promise.all([1, 2, 3, 4, 5].map((x) => batcher.submit(x)));
    expect(seen).toEqual([4, 1]);
  });
});
