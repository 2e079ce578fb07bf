import { Command, Option } from 'commander';
import { CausalLm } from '../generator/causal-lm.js';
import { streamGenerate, type GenerationResult } from '../generator/generate.js';
import { fraction, hubOptionsOf, integer, positiveNumber, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface GenerateOptions extends GlobalOptions, HubCliOptions {
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stop?: string[];
  truncatePrompt?: boolean;
  threads?: number;
}

export function generateCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('generate')
      .description('continue a prompt with a causal language model, printing tokens as they come')
      .argument('<model>', 'a causal LM: a folder in Hugging Face ONNX layout (onnx/model.onnx or onnx/decoder_model_merged.onnx), or hf:<owner>/<repo>')
      .argument('<prompt>', 'the text to continue')
      .option('-n, --max-new-tokens <n>', 'tokens to generate at most (default: the model\'s generation_config.json, else 20)', integer('--max-new-tokens', 1))
      .option('-t, --temperature <t>', '0: greedy; above 0: sample (default: the model\'s generation_config.json)', positiveNumber('--temperature', true))
      .option('--top-k <k>', 'sample among the k most likely tokens (0: all)', integer('--top-k', 0))
      .option('--top-p <p>', 'sample among the most likely tokens whose probabilities sum to p', (v) => (Number(v) === 1 ? 1 : fraction('--top-p')(v)))
      .option('--min-p <p>', 'drop tokens less likely than p × the most likely one', (v) => (Number(v) === 0 ? 0 : fraction('--min-p')(v)))
      .option('--repetition-penalty <r>', 'above 1 discourages repeating tokens', positiveNumber('--repetition-penalty'))
      .option('--seed <n>', 'seed for sampling (default: random, printed with --json)', integer('--seed', 0))
      .addOption(new Option('--stop <text...>', 'stop before any of these strings'))
      .option('--truncate-prompt', 'drop the beginning of a prompt longer than the context instead of failing')
      .option('--threads <n>', 'onnxruntime threads (default: every core)', integer('--threads', 1)),
  )).action(async (model: string, prompt: string, options: GenerateOptions) => {
    const reporter = reporterFor(options);
    const lm = await CausalLm.open(model, { hub: hubOptionsOf(options), threads: options.threads, reporter });
    try {
      let result: GenerationResult | undefined;
      const events = streamGenerate(lm, [prompt], {
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature,
        topK: options.topK,
        topP: options.topP,
        minP: options.minP,
        repetitionPenalty: options.repetitionPenalty,
        seed: options.seed,
        stop: options.stop,
        truncatePrompt: options.truncatePrompt ? 'left' : 'error',
      });
      // The prompt is echoed once the first token exists, so a refused prompt prints only the error.
      let echoed = Boolean(options.json);
      for await (const event of events) {
        if (!echoed) {
          process.stdout.write(prompt);
          echoed = true;
        }
        if (event.type === 'done') result = event.result;
        else if (!options.json && event.text) process.stdout.write(event.text);
      }
      if (options.json) process.stdout.write(`${JSON.stringify({ model: lm.reference, prompt, ...result }, null, 2)}\n`);
      else process.stdout.write('\n');
      if (result && result.truncatedPromptTokens > 0) {
        reporter.warn(`the prompt was longer than the context (${lm.contextLength} tokens): its first ${result.truncatedPromptTokens} tokens were dropped`);
      }
    } finally {
      await lm.dispose();
    }
  });
}
