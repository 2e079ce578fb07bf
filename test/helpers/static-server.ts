import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.jpg': 'image/jpeg',
  '.map': 'application/json',
  '.wav': 'audio/wav',
};

/**
 * Serves fixed URL prefixes from fixed folders on 127.0.0.1, laid out like the repository so the
 * example page's import map works unchanged: /examples/web/, /dist/web/ (compiled for this test),
 * /node_modules/onnxruntime-web/dist/ (the wasm files, no CDN), plus the model and images.
 */
export async function staticServer(mounts: Record<string, string>): Promise<{ server: Server; origin: string }> {
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    const prefix = Object.keys(mounts).find((p) => path.startsWith(p));
    const relative = prefix === undefined ? undefined : normalize(path.slice(prefix.length) || 'index.html');
    if (prefix === undefined || relative === undefined || relative.startsWith('..')) {
      response.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(mounts[prefix]!, relative));
      response.writeHead(200, { 'content-type': TYPES[extname(relative)] ?? 'application/octet-stream' }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

