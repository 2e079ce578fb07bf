/**
 * The built page (`dist/studio/index.html` and `dist/studio/assets/*`, written by Vite). The file
 * list is read once at start-up and only those files are ever served: a URL is looked up by name
 * in that list, never joined to a path.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `dist/studio/` of this package, from src/studio (tsx, tests) and dist/studio (installed) alike. */
export const DEFAULT_ASSETS_DIR = fileURLToPath(new URL('../../dist/studio/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

export interface PageAssets {
  index?: Buffer;
  files: Map<string, { type: string; bytes: Buffer }>;
}

export async function loadPageAssets(dir: string): Promise<PageAssets> {
  const index = await readFile(join(dir, 'index.html')).catch(() => undefined);
  const files = new Map<string, { type: string; bytes: Buffer }>();
  for (const entry of await readdir(join(dir, 'assets'), { withFileTypes: true }).catch(() => [])) {
    const type = TYPES[extname(entry.name).toLowerCase()];
    if (entry.isFile() && type) files.set(entry.name, { type, bytes: await readFile(join(dir, 'assets', entry.name)) });
  }
  return { index, files };
}
