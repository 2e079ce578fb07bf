import { HeadstartError } from '../util/errors.js';

/** The suffix transformers.js gives each weight variant: `onnx/model_fp16.onnx` and so on. */
const DTYPE_SUFFIX = { fp32: '', fp16: '_fp16', q8: '_quantized', q4: '_q4' } as const;
export type OnnxDtype = keyof typeof DTYPE_SUFFIX;
export const ONNX_DTYPES = Object.keys(DTYPE_SUFFIX) as OnnxDtype[];

/** Small files a backbone needs besides its weights, taken when the repository has them. */
export const MODEL_SIDE_FILES = [
  'config.json',
  'preprocessor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.txt',
] as const;

/**
 * Where a dtype's weights live: `onnx/<component><suffix>.onnx`. The component is `model` for most
 * repositories; multi-part exports split it (`vision_model` for CLIP's image tower, `encoder_model` for
 * Whisper's encoder).
 */
export function onnxFileFor(dtype: OnnxDtype, component = 'model'): string {
  return `onnx/${component}${DTYPE_SUFFIX[dtype]}.onnx`;
}

/** The requested weights are not in the repository (or snapshot); says which are. */
export class MissingWeightsError extends HeadstartError {
  constructor(
    readonly wanted: string,
    readonly dtype: OnnxDtype,
    readonly available: OnnxDtype[],
  ) {
    super(
      'usage',
      available.length
        ? `no ${dtype} weights (${wanted}); available dtypes: ${available.join(', ')}`
        : `no ${wanted} and no other ONNX weights for this component: not an ONNX export (look for an Xenova/ or onnx-community/ version of the model)`,
    );
  }
}

/**
 * The files to pull from a repository listing for one ONNX variant: config, preprocessor and tokenizer
 * files when present, the weights, and their external data (`model.onnx_data`, `model.onnx_data_1`, …,
 * which ONNX uses past 2 GB).
 */
export function filesForModel(listing: string[], dtype: OnnxDtype = 'fp32', options: { component?: string } = {}): string[] {
  if (!ONNX_DTYPES.includes(dtype)) {
    throw new HeadstartError('usage', `unknown dtype "${dtype}"; expected one of ${ONNX_DTYPES.join(', ')}`);
  }
  const component = options.component ?? 'model';
  const present = new Set(listing);
  const weights = onnxFileFor(dtype, component);
  if (!present.has(weights)) {
    throw new MissingWeightsError(weights, dtype, ONNX_DTYPES.filter((d) => present.has(onnxFileFor(d, component))));
  }
  const externalData = listing.filter((path) => path.startsWith(`${weights}_data`)).sort();
  return [...MODEL_SIDE_FILES.filter((file) => present.has(file)), ...externalData, weights];
}
