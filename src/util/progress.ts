import cliProgress from 'cli-progress';

/**
 * How long-running work reports itself: a live bar on a terminal, a plain line every few seconds
 * otherwise (CI logs, pipes), nothing when quiet. Library code takes a Reporter; the CLI picks one.
 */
export interface Reporter {
  /** Starts a task of `total` steps; returns its handle. */
  task(label: string, total: number, unit?: string): ProgressTask;
  /** One line of information (never data: that goes to stdout). */
  info(message: string): void;
  warn(message: string): void;
}

/** What an epoch-based task reports with each tick (a `fit` or fine-tune epoch), for live curves. */
export interface EpochDetail {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface ProgressTask {
  /** `detail`: the epoch just finished, for reporters that draw curves (the studio); bars ignore it. */
  tick(steps?: number, detail?: EpochDetail): void;
  done(summary?: string): void;
}

const silentTask: ProgressTask = { tick() {}, done() {} };

/** Reports nothing: the default for library calls. */
export const silentReporter: Reporter = {
  task: () => silentTask,
  info() {},
  warn() {},
};

export interface ConsoleReporterOptions {
  quiet?: boolean;
  /** Defaults to whether stderr is a terminal. */
  tty?: boolean;
  stream?: NodeJS.WritableStream;
  /** Seconds between plain progress lines when not on a terminal. */
  intervalSeconds?: number;
}

export function consoleReporter(options: ConsoleReporterOptions = {}): Reporter {
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? Boolean((stream as NodeJS.WriteStream).isTTY);
  const interval = (options.intervalSeconds ?? 5) * 1000;
  const write = (line: string) => stream.write(`${line}\n`);
  if (options.quiet) {
    return { task: () => silentTask, info() {}, warn: (m) => write(`warning: ${m}`) };
  }
  return {
    info: write,
    warn: (m) => write(`warning: ${m}`),
    task(label, total, unit = 'items') {
      const started = performance.now();
      const rate = (done: number) => done / Math.max((performance.now() - started) / 1000, 1e-9);
      if (tty) {
        const bar = new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {value}/{total} ${unit} | {rate}/s | eta {eta_formatted}`,
            stream: stream as NodeJS.WriteStream,
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        let value = 0;
        bar.start(total, 0, { rate: '0' });
        return {
          tick(steps = 1) {
            value += steps;
            bar.update(value, { rate: rate(value).toFixed(1) });
          },
          done(summary) {
            bar.stop();
            if (summary) write(`${label}: ${summary}`);
          },
        };
      }
      let value = 0;
      let lastLine = performance.now();
      return {
        tick(steps = 1) {
          value += steps;
          const now = performance.now();
          if (now - lastLine >= interval) {
            lastLine = now;
            write(`${label}: ${value}/${total} ${unit} (${rate(value).toFixed(1)}/s)`);
          }
        },
        done(summary) {
          const seconds = ((performance.now() - started) / 1000).toFixed(1);
          write(`${label}: ${summary ?? `${value}/${total} ${unit}`} in ${seconds}s`);
        },
      };
    },
  };
}
