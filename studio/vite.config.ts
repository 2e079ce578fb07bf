// Builds the studio page into dist/studio/ (index.html + assets/), which `headstart studio` serves.
// dist/studio/ also holds the compiled server (tsc), so the folder is not emptied: only assets/ is Vite's.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/studio/', import.meta.url)),
    emptyOutDir: false,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
});
