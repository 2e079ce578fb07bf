import { basename, extname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { Detector } from '../detector/detector.js';
import { drawBoxes } from '../detector/draw.js';
import { writeFileAtomic } from '../util/atomic.js';
import { usageError } from '../util/errors.js';
import { cacheDirOf, emit, hubOptionsOf, integer, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';
import { readFile } from 'node:fs/promises';

interface DetectCliOptions extends GlobalOptions, HubCliOptions {
  threshold: number;
  maxDetections: number;
  draw?: string;
}

function score(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw usageError('--threshold must be between 0 and 1');
  return n;
}

export function detectCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('detect')
      .description('find objects in images: boxes, labels and scores')
      .argument('<model>', 'a detection model folder written by `headstart train`, builtin:centernet (COCO\'s 80 classes), a YOLO .onnx, a DETR folder or hf:<owner>/<repo> (transformers.js DETR)')
      .argument('<images...>', 'image files')
      .option('--threshold <score>', 'lowest score to report', score, 0.25)
      .option('--max-detections <n>', 'at most this many boxes per image', integer('--max-detections', 1), 100)
      .option('--draw <dir>', 'also write a copy of each image with its boxes and labels drawn into this folder'),
  )).action(async (model: string, images: string[], options: DetectCliOptions) => {
    const inputs = new Set(images.map((image) => resolve(image)));
    const drawPaths = options.draw ? images.map((image) => join(options.draw!, `${basename(image, extname(image))}.jpg`)) : [];
    const clash = drawPaths.find((path) => inputs.has(resolve(path)));
    if (clash) throw usageError(`--draw would overwrite the input ${clash}; choose another folder`);
    if (new Set(drawPaths).size !== drawPaths.length) throw usageError('--draw: two inputs have the same file name; they would overwrite each other');
    const detector = await Detector.load(model, { cacheDir: cacheDirOf(options), reporter: reporterFor(options), hub: hubOptionsOf(options) });
    try {
      const results = await detector.detectMany(images, { threshold: options.threshold, maxDetections: options.maxDetections });
      if (options.draw) {
        for (const [i, result] of results.entries()) {
          const boxes = result.detections.map((d) => ({ box: d.box, caption: `${d.label} ${d.score.toFixed(2)}`, colourKey: detector.classes.indexOf(d.label) }));
          await writeFileAtomic(drawPaths[i]!, await drawBoxes(await readFile(images[i]!), boxes));
        }
      }
      const round = (v: number) => Math.round(v * 100) / 100;
      emit(
        options,
        images.map((input, i) => ({
          input,
          detections: results[i]!.detections.map((d) => ({ label: d.label, score: Math.round(d.score * 1e4) / 1e4, box: d.box.map(round) })),
        })),
        () =>
          images
            .map((input, i) => {
              const found = results[i]!.detections;
              const lines = found.map((d) => `  ${(d.score * 100).toFixed(1).padStart(5)}%  ${d.label.padEnd(14)} [${d.box.map((v) => Math.round(v)).join(', ')}]`);
              return `${input}: ${found.length} object${found.length === 1 ? '' : 's'}${lines.length ? `\n${lines.join('\n')}` : ''}`;
            })
            .join('\n') + (options.draw ? `\ndrawn into ${options.draw}` : ''),
      );
    } finally {
      await detector.dispose();
    }
  });
}
