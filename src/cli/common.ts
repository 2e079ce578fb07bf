import { InvalidArgumentError, Option, type Command } from 'commander';
import type { QueueOptions } from '../queue/coordinator.js';
import { consoleReporter, type Reporter } from '../util/progress.js';
import { defaultCacheDir } from '../features/cache.js';

export interface GlobalOptions {
  quiet?: boolean;
  json?: boolean;
  cacheDir?: string;
}

export function reporterFor(options: GlobalOptions): Reporter {
  // With --json, stdout carries the result alone; progress still goes to stderr.
  return consoleReporter({ quiet: options.quiet });
}

export function cacheDirOf(options: GlobalOptions): string {
  return options.cacheDir ?? defaultCacheDir();
}

/** Results go to stdout: JSON for machines, text for people. */
export function emit(options: GlobalOptions, json: unknown, text: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(json, null, 2)}\n` : `${text()}\n`);
}

export function integer(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

export function positiveNumber(name: string, allowZero = false) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) throw new InvalidArgumentError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
    return n;
  };
}

export function fraction(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0 && n < 1)) throw new InvalidArgumentError(`${name} must be between 0 and 1`);
    return n;
  };
}

/** Options every command shares. */
export function withCommonOptions(command: Command): Command {
  return command
    .option('--cache-dir <dir>', 'where features and converted models are cached (default ~/.cache/headstart)')
    .option('--json', 'print machine-readable JSON on stdout')
    .option('-q, --quiet', 'no progress output');
}

/** `--offline` and `--token`, for every command that may open a backbone from the network. */
export interface HubCliOptions {
  offline?: boolean;
  token?: string;
}

/** Adds `--offline` and `--token`, defined once so every command reads them the same way. */
export function withHubOptions(command: Command): Command {
  return command
    .option('--offline', 'never use the network: hf: backbones must be in the Hugging Face cache, tfjs: URLs in headstart\'s (also HF_HUB_OFFLINE=1)')
    .option('--token <token>', 'Hugging Face token for gated or private repositories (default $HF_TOKEN, which is safer: a token on the command line is visible to other processes)');
}

/** The hub settings the library takes; unset flags leave HF_HUB_OFFLINE / HF_TOKEN to decide. */
export function hubOptionsOf(options: HubCliOptions): { offline?: boolean; token?: string } {
  return { offline: options.offline ? true : undefined, token: options.token };
}

/** `--queue` and its settings, for every command that extracts features. */
export interface QueueCliOptions {
  queue?: string;
  queueName?: string;
  queueInputs?: 'path' | 'bytes';
  shardSize?: number;
  queueWindow?: number;
}

/** Adds `--queue …`, defined once so `train` and `extract` read it the same way. */
export function withQueueOptions(command: Command): Command {
  return command
    .option('--queue <url>', 'compute features on `headstart worker`s through a BullMQ queue on Redis (redis://host:port[/db]); the model is the same')
    .option('--queue-name <name>', 'the BullMQ queue the workers take jobs from (default headstart-features)')
    .addOption(
      new Option('--queue-inputs <how>', 'how inputs reach workers: path (default; they share this filesystem) or bytes (inside jobs, at most 8 MiB a file)').choices(['path', 'bytes']),
    )
    .option('--shard-size <n>', 'inputs per queue job (default 32)', integer('--shard-size', 1))
    .option('--queue-window <jobs>', 'jobs in Redis at once (default 64; keep it above twice the number of workers)', integer('--queue-window', 1));
}

/** The library's queue settings from the flags; none without `--queue`. */
export function queueOptionsOf(options: QueueCliOptions): QueueOptions | undefined {
  if (!options.queue) return undefined;
  return { url: options.queue, name: options.queueName, inputs: options.queueInputs, shardSize: options.shardSize, inFlight: options.queueWindow };
}
