import { Command } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { readTextLines } from '../data/text-dataset.js';
import { usageError } from '../util/errors.js';
import { cacheDirOf, emit, hubOptionsOf, integer, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface PredictOptions extends GlobalOptions, HubCliOptions {
  topK: number;
  file?: string;
}

export function predictCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('predict')
      .description('print the top labels, with probabilities, for each input')
      .argument('<model>', 'a model folder written by `headstart train`')
      .argument('[inputs...]', 'image or audio files; for text models, the texts themselves')
      .option('-k, --top-k <n>', 'how many labels to show per input', integer('--top-k', 1), 3)
      .option('-f, --file <lines.txt>', 'text models: predict each non-empty line of this file'),
  )).action(async (model: string, given: string[], options: PredictOptions) => {
    const inputs = [...given, ...(options.file ? await readTextLines(options.file) : [])];
    if (inputs.length === 0) throw usageError('nothing to predict: give inputs, or --file with one text per line');
    const classifier = await Classifier.load(model, { cacheDir: cacheDirOf(options), reporter: reporterFor(options), hub: hubOptionsOf(options) });
    try {
      const predictions = await classifier.predictMany(inputs, { topK: options.topK });
      emit(
        options,
        inputs.map((input, i) => ({ input, predictions: predictions[i] })),
        () =>
          inputs
            .map((input, i) => `${input}\n${predictions[i]!.map((p) => `  ${(p.probability * 100).toFixed(1).padStart(5)}%  ${p.label}`).join('\n')}`)
            .join('\n'),
      );
    } finally {
      await classifier.dispose();
    }
  });
}
