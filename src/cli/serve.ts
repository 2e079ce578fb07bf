import { basename, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { Detector } from '../detector/detector.js';
import type { DetectorToServe } from '../serve/detect-route.js';
import { CausalLm, chatTemplateOf, isCausalLmFolder } from '../generator/causal-lm.js';
import { DEFAULT_COMPLETION_LIMITS, type LanguageModelToServe } from '../serve/completions.js';
import { createServer, DEFAULT_BATCHING, DEFAULT_LIMITS, type ModelToServe } from '../serve/server.js';
import { usageError } from '../util/errors.js';
import { cacheDirOf, hubOptionsOf, integer, positiveNumber, reporterFor, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface ServeCommandOptions extends GlobalOptions, HubCliOptions {
  port: number;
  host: string;
  maxBatch: number;
  maxWaitMs: number;
  maxBodyMb: number;
  maxPixels: number;
  maxTextLength: number;
  maxInputs: number;
  maxConcurrent: number;
  maxNewTokens: number;
  maxGenerations: number;
  logLevel: string;
}

export function serveCommand(): Command {
  return withHubOptions(new Command('serve'))
    .description('serve trained models over HTTP: POST /v1/models/<name>/predict, GET /v1/models, /healthz, /metrics; causal LMs at POST /v1/completions and /v1/chat/completions (OpenAI format); detectors (builtin:centernet, YOLO .onnx) at POST /v1/detectors/<name>/detect (per-box Grad-CAM at POST /v1/models/<name>/explain)')
    .argument('<models...>', 'model folders written by `headstart train` (or causal LM folders / hf: references); served under their folder name, or name=folder')
    .option('-p, --port <port>', 'TCP port (0: any free one)', integer('--port'), 8080)
    .option('--host <host>', 'interface to listen on (0.0.0.0 for every one)', '127.0.0.1')
    .option('--max-batch <n>', 'inputs per backbone call', integer('--max-batch', 1), DEFAULT_BATCHING.maxBatch)
    .option('--max-wait-ms <ms>', 'how long the first input waits for others when the model is idle (0: not at all; under load, inputs queue while a batch runs anyway)', positiveNumber('--max-wait-ms', true), DEFAULT_BATCHING.maxWaitMs)
    .option('--max-body-mb <mb>', 'largest request body (multipart: all its files together)', positiveNumber('--max-body-mb'), DEFAULT_LIMITS.maxBodyBytes / 1024 / 1024)
    .option('--max-pixels <n>', 'largest image, in pixels (checked from the header, before decoding)', integer('--max-pixels', 1), DEFAULT_LIMITS.maxPixels)
    .option('--max-text-length <n>', 'longest text, in characters', integer('--max-text-length', 1), DEFAULT_LIMITS.maxTextLength)
    .option('--max-inputs <n>', 'most inputs in one batch request', integer('--max-inputs', 1), DEFAULT_LIMITS.maxBatchInputs)
    .option('--max-concurrent <n>', 'prediction requests processed at once (then 429)', integer('--max-concurrent', 1), DEFAULT_LIMITS.maxConcurrent)
    .option('--max-new-tokens <n>', 'language models: most tokens one request may generate', integer('--max-new-tokens', 1), DEFAULT_COMPLETION_LIMITS.maxNewTokens)
    .option('--max-generations <n>', 'language models: generations running at once (then 429)', integer('--max-generations', 1), DEFAULT_COMPLETION_LIMITS.maxConcurrentGenerations)
    .addOption(new Option('--log-level <level>', 'JSON log level on stdout').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .option('--cache-dir <dir>', 'where converted backbones are cached (default ~/.cache/headstart)')
    .action(async (folders: string[], options: ServeCommandOptions) => {
      const named = folders.map((spec) => {
        const at = spec.indexOf('=');
        if (at > 0 && !spec.slice(0, at).includes(':')) return { name: spec.slice(0, at), folder: spec.slice(at + 1) };
        // builtin:centernet is served as "centernet".
        return { name: spec.startsWith('builtin:') ? spec.slice('builtin:'.length) : basename(resolve(spec)), folder: spec };
      });
      const duplicate = named.find((entry, i) => named.findIndex((other) => other.name === entry.name) !== i);
      if (duplicate) throw usageError(`two models would be served as "${duplicate.name}"; name them with name=folder`);

      // Progress goes to stderr; stdout carries the JSON logs alone.
      const reporter = reporterFor({ ...options, quiet: options.logLevel === 'silent' } as GlobalOptions);
      const models: ModelToServe[] = [];
      const languageModels: LanguageModelToServe[] = [];
      const detectors: DetectorToServe[] = [];
      try {
        for (const { name, folder } of named) {
          if (await Detector.isDetectorReference(folder)) detectors.push({ name, detector: await Detector.load(folder, { cacheDir: cacheDirOf(options), reporter }) });
          else if (folder.startsWith('hf:') || (await isCausalLmFolder(folder))) {
            const lm = await CausalLm.open(folder, { hub: hubOptionsOf(options), reporter });
            languageModels.push({ name, lm, chatTemplate: await chatTemplateOf(lm.folder) });
          } else models.push({ name, classifier: await Classifier.load(folder, { cacheDir: cacheDirOf(options), reporter, hub: hubOptionsOf(options) }) });
        }
        const server = await createServer(models, {
          logger: { level: options.logLevel },
          languageModels,
          detectors,
          completionLimits: { maxNewTokens: options.maxNewTokens, maxPromptLength: options.maxTextLength, maxConcurrentGenerations: options.maxGenerations },
          batching: { maxBatch: options.maxBatch, maxWaitMs: options.maxWaitMs },
          limits: {
            maxBodyBytes: Math.round(options.maxBodyMb * 1024 * 1024),
            maxPixels: options.maxPixels,
            maxTextLength: options.maxTextLength,
            maxBatchInputs: options.maxInputs,
            maxConcurrent: options.maxConcurrent,
          },
        });
        await server.listen(options.port, options.host);
        await untilSignalled(server.app.log, () => server.close());
      } finally {
        for (const { classifier } of models) await classifier.dispose();
        for (const { lm } of languageModels) await lm.dispose();
        for (const { detector } of detectors) await detector.dispose();
      }
    });
}

/** Resolves after SIGINT/SIGTERM and a graceful close; a second signal exits at once. */
function untilSignalled(log: { info(object: object, message: string): void }, close: () => Promise<void>): Promise<void> {
  return new Promise((resolveClosed, reject) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) process.exit(130);
      signalled = true;
      log.info({ signal }, 'shutting down: finishing requests in flight');
      close().then(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        log.info({}, 'stopped');
        resolveClosed();
      }, reject);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
