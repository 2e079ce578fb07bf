import { describe, expect, test } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { queueAddress } from '../src/queue/connection.js';
import { decodeVector, encodeVector, jobIdOf, planShards } from '../src/queue/jobs.js';
import { HeadstartError } from '../src/util/errors.js';
import { runCli } from './helpers/cli.js';

const entry = (key: string, size = 0) => ({ key, size });

describe('queue jobs', () => {
  test('shards depend on the set of inputs only, not their order, and respect the count and byte caps', () => {
    const keys = ['d4', 'a1', 'c3', 'b2', 'e5'];
    const one = planShards(keys.map((k) => entry(k)), 2);
    const other = planShards([...keys].reverse().map((k) => entry(k)), 2);
    expect(one.map((s) => s.map((e) => e.key))).toEqual([['a1', 'b2'], ['c3', 'd4'], ['e5']]);
    expect(other).toEqual(one);
    // Bytes close a shard before the count does; an input larger than the cap is alone.
    const bySize = planShards([entry('a', 6), entry('b', 6), entry('c', 20), entry('d', 1)], 10, 10);
    expect(bySize.map((s) => s.map((e) => e.key))).toEqual([['a'], ['b'], ['c'], ['d']]);
    expect(jobIdOf('ns', undefined, ['a1', 'b2'])).toBe(jobIdOf('ns', undefined, ['a1', 'b2']));
    expect(jobIdOf('ns', undefined, ['a1', 'b2'])).not.toBe(jobIdOf('ns', { count: 1, seed: 0 }, ['a1', 'b2']));
  });

  test('vectors cross the queue with their exact bits', () => {
    const vector = Float32Array.from([0.1, -3e-39, Number.MAX_VALUE, Math.PI, -0]);
    const back = decodeVector(encodeVector(vector), 5)!;
    expect(Buffer.from(back.buffer).equals(Buffer.from(vector.buffer))).toBe(true);
    expect(decodeVector(encodeVector(vector), 4)).toBeUndefined();
  });

  test('queue URLs: redis:// with a database, passwords hidden in logs, anything else a usage error', () => {
    expect(queueAddress('redis://:secret@10.0.0.5:6380/2').display).toBe('redis://:***@10.0.0.5:6380/2');
    for (const bad of ['localhost:6379', 'http://host:6379', 'redis://host:6379/x']) {
      expect(() => queueAddress(bad)).toThrow(HeadstartError);
    }
  });

  test('the CLI refuses --queue where workers cannot help, saying why', async () => {
    const badUrl = await runCli(['extract', 'nowhere/', '--queue', 'localhost:6379']);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/--queue: "localhost:6379" is not a redis:\/\/ or rediss:\/\/ URL/);
    const noCache = await Classifier.train({ data: 'nowhere/', queue: { url: 'redis://127.0.0.1:1' }, cache: false }).catch((e: unknown) => e);
    expect(noCache).toBeInstanceOf(HeadstartError);
    expect((noCache as HeadstartError).kind).toBe('usage');
    expect((noCache as Error).message).toMatch(/feature cache, so it cannot be turned off/);
  });
});
