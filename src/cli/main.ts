#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, HeadstartError, messageOf } from '../util/errors.js';
import { VERSION } from '../version.js';
import { compareCommand } from './compare.js';
import { demoCommand } from './demo.js';
import { detectCommand } from './detect.js';
import { evalCommand } from './eval.js';
import { explainCommand } from './explain.js';
import { exportCommand } from './export.js';
import { extractCommand } from './extract.js';
import { generateCommand } from './generate.js';
import { modelsCommand } from './models.js';
import { predictCommand } from './predict.js';
import { reportCommand } from './report.js';
import { serveCommand } from './serve.js';
import { studioCommand } from './studio.js';
import { trainCommand } from './train.js';
import { workerCommand } from './worker.js';

/** Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad data, 4 bad model, 5 network. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('headstart')
    .description('Make a pre-trained model yours: fine-tune, evaluate honestly, ship.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) })
    .addCommand(trainCommand())
    .addCommand(predictCommand())
    .addCommand(detectCommand())
    .addCommand(evalCommand())
    .addCommand(explainCommand())
    .addCommand(demoCommand())
    .addCommand(modelsCommand())
    .addCommand(reportCommand())
    .addCommand(compareCommand())
    .addCommand(exportCommand())
    .addCommand(serveCommand())
    .addCommand(generateCommand())
    .addCommand(studioCommand())
    .addCommand(extractCommand())
    .addCommand(workerCommand());
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successes; everything else commander rejects is a usage error.
      return error.exitCode === 0 ? 0 : EXIT_CODES.usage;
    }
    if (error instanceof HeadstartError) {
      process.stderr.write(`error: ${error.message}\n`);
      return EXIT_CODES[error.kind];
    }
    process.stderr.write(`internal error: ${messageOf(error)}\n${error instanceof Error && process.env.HEADSTART_DEBUG ? `${error.stack}\n` : ''}`);
    return EXIT_CODES.internal;
  }
}

process.exitCode = await main(process.argv.slice(2));
