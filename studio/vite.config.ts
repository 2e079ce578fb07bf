// Builds the studio page into dist/studio/ (index.html + assets/), which `headstart studio` serves.
// dist/studio/ also holds the compiled server (tsc), so the folder is not emptied: only assets/ is
// Vite's, and it is cleared before each build so old hashed bundles do not pile up.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

function cleanAssets(): Plugin {
  let outDir = '';
  return {
    name: 'headstart-clean-assets',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    buildStart() {
      rmSync(join(outDir, 'assets'), { recursive: true, force: true });
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  plugins: [cleanAssets()],
  build: {
    outDir: fileURLToPath(new URL('../dist/studio/', import.meta.url)),
    emptyOutDir: false,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
});
