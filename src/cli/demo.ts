import { Command } from 'commander';
import { MODEL_FOLDER_GUARD } from '../artifacts/model-folder.js';
import { ImageClassifier } from '../classifier/image-classifier.js';
import { DEFAULT_IMAGE_BACKBONE } from '../backbones/resolve.js';
import { materialiseDemoDigits } from '../data/demo-digits.js';
import { formatMetricsTable } from '../evaluate/metrics.js';
import { checkReplaceable } from '../util/atomic.js';
import { cacheDirOf, emit, hubOptionsOf, integer, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';
import { summaryOf } from './format.js';

interface DemoOptions extends GlobalOptions, HubCliOptions {
  backbone: string;
  perClass: number;
  out: string;
}

export function demoCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('demo')
      .description('train and evaluate on bundled handwritten digits with the bundled backbone, fully offline')
      .option('-b, --backbone <ref>', 'backbone to use', DEFAULT_IMAGE_BACKBONE)
      .option('--per-class <n>', 'training images per digit', integer('--per-class', 2), 20)
      .option('-o, --out <dir>', 'where to write the model folder', 'headstart-demo-model'),
  )).action(async (options: DemoOptions) => {
    const reporter = reporterFor(options);
    const cacheDir = cacheDirOf(options);
    await checkReplaceable(options.out, 'folder', MODEL_FOLDER_GUARD);
    const data = await materialiseDemoDigits(cacheDir, { train: options.perClass, validation: 20 });
    reporter.info(`demo data: ${options.perClass} training and 20 validation images per digit in ${data}`);
    const classifier = await ImageClassifier.train({ data, backbone: options.backbone, backboneOptions: { hub: hubOptionsOf(options) }, cacheDir, reporter });
    try {
      await classifier.save(options.out);
      const validation = classifier.metrics.validation!;
      emit(options, { model: options.out, data, ...summaryOf(classifier.manifest) }, () =>
        [
          `validation (${validation.n} images, never seen in training):`,
          formatMetricsTable(validation),
          '',
          `model written to ${options.out}; try: headstart predict ${options.out} ${data}/val/7/0000.png`,
        ].join('\n'),
      );
    } finally {
      await classifier.dispose();
    }
  });
}
