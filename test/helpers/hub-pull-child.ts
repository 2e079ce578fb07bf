/**
 * Pulls one model in a separate process, for the concurrency test:
 *   node --import tsx test/helpers/hub-pull-child.ts <endpoint> <cacheDir> <repo>
 * Prints the PulledModel as JSON on stdout; progress and waiting notices go to stderr.
 */
import { pullModel } from '../../src/hub/pull.js';

const [endpoint, cacheDir, repo] = process.argv.slice(2);
const pulled = await pullModel(repo!, {
  endpoint,
  cacheDir,
  reporter: {
    info: (message) => process.stderr.write(`info: ${message}\n`),
    warn: (message) => process.stderr.write(`warn: ${message}\n`),
    task: () => ({ tick() {}, done() {} }),
  },
});
process.stdout.write(JSON.stringify(pulled));
