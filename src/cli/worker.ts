import { Command } from 'commander';
import { startWorker } from '../queue/worker.js';
import { cacheDirOf, hubOptionsOf, integer, positiveNumber, reporterFor, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface WorkerCommandOptions extends GlobalOptions, HubCliOptions {
  queue: string;
  queueName?: string;
  concurrency: number;
  lockSeconds: number;
}

export function workerCommand(): Command {
  return withHubOptions(new Command('worker'))
    .description('compute features for `train --queue` / `extract --queue` runs anywhere: take jobs from a BullMQ queue on Redis until SIGTERM')
    .requiredOption('--queue <url>', 'the Redis the coordinators use: redis://host:port[/db]')
    .option('--queue-name <name>', 'the BullMQ queue to take jobs from (default headstart-features)')
    .option('--concurrency <n>', 'jobs worked on at once in this process', integer('--concurrency', 1), 1)
    .option('--lock-seconds <s>', "a job's lock lifetime: if this worker is killed, another takes its job after about this long", positiveNumber('--lock-seconds'), 30)
    .option('--cache-dir <dir>', 'where converted backbones are cached (default ~/.cache/headstart)')
    .option('-q, --quiet', 'only warnings')
    .action(async (options: WorkerCommandOptions) => {
      const reporter = reporterFor(options);
      const worker = await startWorker({
        url: options.queue,
        name: options.queueName,
        concurrency: options.concurrency,
        lockSeconds: options.lockSeconds,
        cacheDir: cacheDirOf(options),
        hub: hubOptionsOf(options),
        reporter,
      });
      // SIGTERM (systemd stop, docker stop, kill): finish the jobs in hand, then exit; a second signal exits at once.
      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const onSignal = (signal: NodeJS.Signals) => {
          if (stopping) process.exit(130);
          stopping = true;
          const jobs = worker.inHand();
          reporter.info(jobs.length ? `${signal}: finishing the job in hand (${jobs.join(', ')}), then stopping` : `${signal}: no job in hand, stopping`);
          worker.close().then(() => {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            reporter.info(`worker ${worker.id} stopped`);
            resolve();
          }, reject);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
