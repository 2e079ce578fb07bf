import { describe, expect, it } from 'vitest';
import { formatModelReference, parseModelReference } from '../src/hub/reference.js';

describe('parseModelReference', () => {
  it('reads the four kinds of reference', () => {
    expect(parseModelReference('hf:Xenova/resnet-18')).toEqual({ kind: 'hf', repo: 'Xenova/resnet-18', revision: 'main' });
    expect(parseModelReference('hf:onnx-community/mobilenet_v2_1.0_224@v1.2')).toEqual({ kind: 'hf', repo: 'onnx-community/mobilenet_v2_1.0_224', revision: 'v1.2' });
    expect(parseModelReference('hf:Xenova/resnet-18@refs/pr/1')).toEqual({ kind: 'hf', repo: 'Xenova/resnet-18', revision: 'refs/pr/1' });
    const commit = '0123456789abcdef0123456789abcdef01234567';
    expect(parseModelReference(`hf:a/b@${commit}`)).toEqual({ kind: 'hf', repo: 'a/b', revision: commit });
    expect(parseModelReference('builtin:mobilenet-v2-1.4')).toEqual({ kind: 'builtin', name: 'mobilenet-v2-1.4' });
    expect(parseModelReference('tfjs:https://example.com/model.json')).toEqual({ kind: 'tfjs', path: 'https://example.com/model.json' });
    expect(parseModelReference('./models/mine')).toEqual({ kind: 'path', path: './models/mine' });
    expect(parseModelReference('Xenova/resnet-18')).toEqual({ kind: 'path', path: 'Xenova/resnet-18' });
  });

  it('round-trips through formatModelReference', () => {
    for (const text of ['hf:Xenova/resnet-18', 'hf:a/b@dev', 'builtin:inception-v3', 'tfjs:./x/model.json', 'some/path']) {
      expect(formatModelReference(parseModelReference(text))).toBe(text);
    }
    expect(formatModelReference(parseModelReference('hf:a/b@main'))).toBe('hf:a/b');
  });

  it('rejects malformed ids with a usage error that shows the expected form', () => {
    const cases: [string, RegExp][] = [
      ['hf:', /exactly one "\/"/],
      ['hf:resnet-18', /exactly one "\/"/],
      ['hf:a/b/c', /exactly one "\/"/],
      ['hf:/b', /must not be empty/],
      ['hf:a/b@', /empty revision/],
      ['hf:a b/c', /only letters, digits/],
      ['hf:a/-b', /must not start or end/],
      ['hf:a--x/b', /"--" and "\.\." are not allowed/],
      ['hf:a/b@../../etc', /not a valid revision/],
      ['hf:a/b@x y', /not a valid revision/],
      ['builtin:', /expected builtin:<name>/],
      ['tfjs:', /expected tfjs:/],
      ['', /empty model reference/],
    ];
    for (const [text, message] of cases) {
      let error: any;
      try {
        parseModelReference(text);
      } catch (e) {
        error = e;
      }
      expect(error?.kind, text).toBe('usage');
      expect(error.message, text).toMatch(message);
      if (text.startsWith('hf:') && !text.includes('@')) expect(error.message).toContain('hf:<owner>/<name>[@<revision>]');
    }
  });
});
