import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const WHISPER_FIXTURE = { melBins: 80, frames: 3000, hidden: 8 } as const;

/**
 * A Whisper-shaped encoder with made-up weights — no Whisper weights are available offline: the
 * `input_features` [batch, 80, 3000] log-mel goes through one stride-2 convolution (as Whisper's
 * second conv) to `last_hidden_state` [batch, 1500, 8]. Enough to test the front end, the pooling
 * over the positions that cover the clip, and the hub path; it knows nothing about sound.
 */
export function whisperLikeEncoder(frames: number = WHISPER_FIXTURE.frames): Uint8Array {
  const { melBins, hidden } = WHISPER_FIXTURE;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const ints = (name: string, values: number[]) => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: values });
  const tensor = (name: string, dims: number[], values: (i: number) => number) => ({
    name,
    dims,
    dataType: FLOAT,
    floatData: Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => values(i)),
  });
  const valueInfo = (name: string, dims: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'headstart test fixture',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'whisper-like-encoder',
      node: [
        { opType: 'Conv', input: ['input_features', 'conv.weight', 'conv.bias'], output: ['conv'], attribute: [ints('kernel_shape', [3]), ints('strides', [2]), ints('pads', [1, 1])] },
        { opType: 'Transpose', input: ['conv'], output: ['last_hidden_state'], attribute: [ints('perm', [0, 2, 1])] },
      ],
      initializer: [tensor('conv.weight', [hidden, melBins, 3], (i) => Math.sin(i * 0.7) / 20), tensor('conv.bias', [hidden], (i) => i / 10)],
      input: [valueInfo('input_features', ['batch', melBins, frames])],
      output: [valueInfo('last_hidden_state', ['batch', frames / 2, hidden])],
    },
  }).finish();
}

/**
 * The fixture as a Hugging Face Whisper export folder: config, feature extractor config,
 * `onnx/encoder_model.onnx`. Whisper's chunks are 30 s; shorter ones make long-clip tests cheap.
 */
export async function writeWhisperLikeFolder(dir: string, chunkSeconds = 30): Promise<string> {
  const frames = chunkSeconds * 100;
  await mkdir(join(dir, 'onnx'), { recursive: true });
  await writeFile(join(dir, 'onnx', 'encoder_model.onnx'), whisperLikeEncoder(frames));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'whisper', d_model: WHISPER_FIXTURE.hidden }));
  await writeFile(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({
      feature_extractor_type: 'WhisperFeatureExtractor',
      feature_size: WHISPER_FIXTURE.melBins,
      sampling_rate: 16000,
      hop_length: 160,
      n_fft: 400,
      chunk_length: chunkSeconds,
      n_samples: chunkSeconds * 16000,
      nb_max_frames: frames,
      padding_value: 0,
      return_attention_mask: false,
    }),
  );
  return dir;
}
