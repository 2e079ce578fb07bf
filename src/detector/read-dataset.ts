import { stat } from 'node:fs/promises';
import { dataError } from '../util/errors.js';
import { findCocoFiles, readCocoDataset, ROBOFLOW_ANNOTATIONS } from './coco-format.js';
import type { DetectionDataset, DetectionFormat, DetectionSplitOptions } from './detection-dataset.js';
import { isVocDataset, readVocDataset } from './voc-format.js';
import { findYoloDataset, readYoloDataset } from './yolo-format.js';

/** Which detection layout a path holds, if any: how `--task detect` is guessed from the data. */
export async function detectionFormatOf(path: string): Promise<DetectionFormat | undefined> {
  if (!(await stat(path).catch(() => undefined))) return undefined;
  if (await findCocoFiles(path)) return 'coco';
  if (await findYoloDataset(path)) return 'yolo';
  if (await isVocDataset(path)) return 'voc';
  return undefined;
}

/** Reads a detection dataset in any of the three layouts (COCO / Roboflow JSON, YOLO, Pascal VOC). */
export async function readDetectionDataset(path: string, options: DetectionSplitOptions = {}): Promise<DetectionDataset> {
  if (!(await stat(path).catch(() => undefined))) throw dataError('no such file or folder', path);
  const format = await detectionFormatOf(path);
  if (format === 'coco') return readCocoDataset(path, options);
  if (format === 'yolo') return readYoloDataset(path, options);
  if (format === 'voc') return readVocDataset(path, options);
  throw dataError(
    'not a detection dataset: expected COCO (annotations/instances_<split>.json), Roboflow COCO ' +
      `(train/${ROBOFLOW_ANNOTATIONS}), YOLO (a dataset YAML, or images/ + labels/) or Pascal VOC (Annotations/ + JPEGImages/)`,
    path,
  );
}
