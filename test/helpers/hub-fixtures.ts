import { SHARED } from './images.js';
import { mkdtemp, readFile, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeCommit, type FixtureRepo } from './hub-server.js';

export const SHARED_MODELS = join(SHARED, 'models');

export const RESNET = 'test-org/resnet-18-random';
export const MOBILENET = 'test-org/mobilenet-v2-random';
export const BERT = 'test-org/bert-tiny-random';
export const RESNET_V1_COMMIT = fakeCommit(`${RESNET}@v1.0`);

/** The three fixture repositories, served read-only from shared/models. */
export const HUB_FIXTURES: FixtureRepo[] = [
  { id: RESNET, dir: join(SHARED_MODELS, 'resnet-18-random'), refs: { 'v1.0': RESNET_V1_COMMIT } },
  { id: MOBILENET, dir: join(SHARED_MODELS, 'mobilenet-v2-random') },
  { id: BERT, dir: join(SHARED_MODELS, 'bert-tiny-random') },
];

export function hubTempDir(prefix = 'headstart-hub-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Every file under `dir` (following nothing), for checks such as "the token was written nowhere". */
export async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await allFiles(path)));
    else out.push(path);
  }
  return out;
}

/** Whether any regular file or symlink target under `dir` contains `needle`. */
export async function anyFileContains(dir: string, needle: string): Promise<string | undefined> {
  for (const path of await allFiles(dir)) {
    const info = await lstat(path);
    if (info.isSymbolicLink()) continue; // targets are blobs, checked as files themselves
    if ((await readFile(path)).includes(needle)) return path;
  }
  return undefined;
}
