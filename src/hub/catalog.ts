import type { OnnxDtype } from '../backbones/hf-folder.js';
import { parseModelReference } from './reference.js';

/**
 * Recommended backbones: facts only, nothing is downloaded to list them. Sizes are the Hub's file sizes
 * in MB (10^6 bytes) of the weights for each dtype (`onnx/<component><suffix>.onnx`, as transformers.js
 * names them); a dtype left out was not confirmed to exist. Parameter counts are approximate, as the
 * upstream model cards give them. Anything not confirmed is said in `note`.
 */
export type Modality = 'image' | 'text' | 'audio';
export type Pooling = 'cls' | 'mean' | 'global-average' | 'projection';

export interface ImageInput {
  modality: 'image';
  /** Side of the square the network sees, in pixels. */
  size: number;
  /** How an image is brought to `size` (the upstream image processor). */
  resize: string;
  /** Per-channel normalisation applied after scaling pixels to [0, 1]. */
  mean: [number, number, number];
  std: [number, number, number];
}

export interface TextInput {
  modality: 'text';
  maxTokens: number;
  tokenizer: string;
}

export interface AudioInput {
  modality: 'audio';
  sampleRate: number;
  melBins: number;
  windowSeconds: number;
}

export interface CatalogEntry {
  /** What to pass as `--backbone`: `hf:<owner>/<name>` or `builtin:<name>`. */
  id: string;
  name: string;
  modality: Modality;
  /** The upstream task the weights were trained for. */
  task: string;
  /** The original model the ONNX export was made from. */
  upstream: string;
  /** The ONNX graph used as the backbone: `onnx/<component>.onnx` (`model` unless the export is split). */
  onnxComponent: string;
  input: ImageInput | TextInput | AudioInput;
  features: {
    /** Where the feature vector comes from. */
    source: string;
    pooling: Pooling;
    dim: number;
  };
  parameters: number;
  licence: string;
  /** Approximate download per dtype, MB; empty for builtins, which ship with headstart. */
  downloadMB: Partial<Record<OnnxDtype, number>>;
  note: string;
}

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;
const HALF = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } as const;
const CLIP = { mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] } as const;
const CLASSIFIER_EXPORT =
  'The ONNX export is the ImageNet classifier (graph output `logits`); headstart takes the features from the input of its classification layer automatically (the same vector as the pooled output).';

const image = (size: number, resize: string, norm: { mean: readonly number[]; std: readonly number[] }): ImageInput => ({
  modality: 'image',
  size,
  resize,
  mean: [...norm.mean] as [number, number, number],
  std: [...norm.std] as [number, number, number],
});

export const CATALOG: readonly CatalogEntry[] = [
  {
    id: 'hf:Xenova/resnet-18',
    name: 'ResNet-18',
    modality: 'image',
    task: 'image classification (ImageNet-1k)',
    upstream: 'microsoft/resnet-18',
    onnxComponent: 'model',
    input: image(224, 'shortest edge to 256 (224 / crop_pct 0.875), bicubic, centre crop 224', IMAGENET),
    features: { source: 'global average pool of the last stage (input of the classifier)', pooling: 'global-average', dim: 512 },
    parameters: 11.7e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 46.8, fp16: 23.4, q8: 11.8, q4: 46.8 },
    note: `${CLASSIFIER_EXPORT} Its q4 file is as large as fp32 (4-bit quantisation leaves convolutions alone).`,
  },
  {
    id: 'hf:Xenova/resnet-50',
    name: 'ResNet-50',
    modality: 'image',
    task: 'image classification (ImageNet-1k)',
    upstream: 'microsoft/resnet-50',
    onnxComponent: 'model',
    input: image(224, 'shortest edge to 256 (224 / crop_pct 0.875), bicubic, centre crop 224', IMAGENET),
    features: { source: 'global average pool of the last stage (input of the classifier)', pooling: 'global-average', dim: 2048 },
    parameters: 25.6e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 102, fp16: 51.1, q8: 25.8 },
    note: `${CLASSIFIER_EXPORT} A q4 file was not confirmed.`,
  },
  {
    id: 'hf:onnx-community/mobilenet_v2_1.0_224',
    name: 'MobileNetV2 1.0 (224)',
    modality: 'image',
    task: 'image classification (ImageNet-1k)',
    upstream: 'google/mobilenet_v2_1.0_224',
    onnxComponent: 'model',
    input: image(224, 'shortest edge to 256, bilinear, centre crop 224 (MobileNetV2ImageProcessor)', HALF),
    features: { source: 'global average pool of the last 1×1 convolution (input of the classifier)', pooling: 'global-average', dim: 1280 },
    parameters: 3.5e6,
    licence: 'other (see the google/mobilenet_v2_1.0_224 model card)',
    downloadMB: { fp32: 14, fp16: 7, q8: 3.7 },
    note: `${CLASSIFIER_EXPORT} Sizes are estimated from the parameter count (3.5 M × 4/2/1 bytes), not read off the repository; the preprocessing was not checked against its preprocessor_config.json.`,
  },
  {
    id: 'hf:Xenova/vit-base-patch16-224-in21k',
    name: 'ViT-B/16 (ImageNet-21k)',
    modality: 'image',
    task: 'image feature extraction (pre-trained on ImageNet-21k, no classifier)',
    upstream: 'google/vit-base-patch16-224-in21k',
    onnxComponent: 'model',
    input: image(224, 'stretch to 224×224, bilinear', HALF),
    features: { source: 'last_hidden_state [B, 197, 768], token 0 (CLS)', pooling: 'cls', dim: 768 },
    parameters: 86.4e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 343, fp16: 172, q8: 87.5 },
    note: 'Whether the export also has a pooler_output was not checked; the CLS token of last_hidden_state is the usual feature.',
  },
  {
    id: 'hf:Xenova/convnext-tiny-224',
    name: 'ConvNeXt-T',
    modality: 'image',
    task: 'image classification (ImageNet-1k)',
    upstream: 'facebook/convnext-tiny-224',
    onnxComponent: 'model',
    input: image(224, 'shortest edge to 256 (224 / crop_pct 0.875), bicubic, centre crop 224', IMAGENET),
    features: { source: 'global average pool + layer norm of the last stage (input of the classifier)', pooling: 'global-average', dim: 768 },
    parameters: 28.6e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 115, fp16: 57.4, q8: 29.3, q4: 27.2 },
    note: CLASSIFIER_EXPORT,
  },
  {
    id: 'hf:Xenova/dinov2-small',
    name: 'DINOv2-S/14',
    modality: 'image',
    task: 'image feature extraction (self-supervised, no classifier)',
    upstream: 'facebook/dinov2-small',
    onnxComponent: 'model',
    input: image(224, 'shortest edge to 256, bicubic, centre crop 224 (BitImageProcessor)', IMAGENET),
    features: { source: 'last_hidden_state [B, 257, 384], token 0 (CLS, after the final layer norm)', pooling: 'cls', dim: 384 },
    parameters: 22.1e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 88.5, fp16: 44.4, q8: 24.5 },
    note: 'Concatenating the CLS token with the mean of the patch tokens (768-d) is the linear-probe recipe of the DINOv2 paper.',
  },
  {
    id: 'hf:Xenova/clip-vit-base-patch32',
    name: 'CLIP ViT-B/32 (vision tower)',
    modality: 'image',
    task: 'contrastive image-text embedding',
    upstream: 'openai/clip-vit-base-patch32',
    onnxComponent: 'vision_model',
    input: image(224, 'shortest edge to 224, bicubic, centre crop 224 (CLIPImageProcessor)', CLIP),
    features: { source: 'image_embeds: the CLS token projected into the shared image-text space', pooling: 'projection', dim: 512 },
    parameters: 88e6,
    licence: 'MIT',
    downloadMB: { fp32: 352, fp16: 176, q8: 89.1 },
    note: 'Only onnx/vision_model*.onnx is pulled (the repository also holds the text tower and the joint model). The Hub model card declares no licence; MIT is the licence of the openai/CLIP release. The parameter count is estimated from the fp32 file size.',
  },
  {
    id: 'hf:Xenova/all-MiniLM-L6-v2',
    name: 'all-MiniLM-L6-v2',
    modality: 'text',
    task: 'sentence embedding',
    upstream: 'sentence-transformers/all-MiniLM-L6-v2',
    onnxComponent: 'model',
    input: { modality: 'text', maxTokens: 256, tokenizer: 'WordPiece, uncased, 30522 tokens' },
    features: { source: 'last_hidden_state, averaged over the attention mask, then L2-normalised', pooling: 'mean', dim: 384 },
    parameters: 22.7e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 90.4, fp16: 45.3, q8: 23 },
    note: 'Inputs longer than 256 word pieces are truncated (the sentence-transformers setting; the network accepts 512).',
  },
  {
    id: 'hf:Xenova/bge-small-en-v1.5',
    name: 'BGE small en v1.5',
    modality: 'text',
    task: 'sentence embedding (retrieval)',
    upstream: 'BAAI/bge-small-en-v1.5',
    onnxComponent: 'model',
    input: { modality: 'text', maxTokens: 512, tokenizer: 'WordPiece, uncased, 30522 tokens' },
    features: { source: 'last_hidden_state, token 0 (CLS), L2-normalised', pooling: 'cls', dim: 384 },
    parameters: 33.4e6,
    licence: 'MIT',
    downloadMB: { fp32: 133, fp16: 66.7, q8: 34 },
    note: 'For retrieval queries BAAI recommends the prefix "Represent this sentence for searching relevant passages: "; classification needs none.',
  },
  {
    id: 'hf:Xenova/bert-base-uncased',
    name: 'BERT base (uncased)',
    modality: 'text',
    task: 'masked language modelling',
    upstream: 'google-bert/bert-base-uncased',
    onnxComponent: 'model',
    input: { modality: 'text', maxTokens: 512, tokenizer: 'WordPiece, uncased, 30522 tokens' },
    features: { source: 'last hidden state, averaged over the attention mask', pooling: 'mean', dim: 768 },
    parameters: 110e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 438, fp16: 219, q8: 111, q4: 150 },
    note: 'The repository is tagged fill-mask: its graph output is likely the vocabulary logits, not the hidden state, which then has to be taken as an inner output (not checked).',
  },
  {
    id: 'hf:Xenova/distilbert-base-uncased',
    name: 'DistilBERT base (uncased)',
    modality: 'text',
    task: 'masked language modelling',
    upstream: 'distilbert/distilbert-base-uncased',
    onnxComponent: 'model',
    input: { modality: 'text', maxTokens: 512, tokenizer: 'WordPiece, uncased, 30522 tokens' },
    features: { source: 'last hidden state, averaged over the attention mask', pooling: 'mean', dim: 768 },
    parameters: 66e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 268, fp16: 134, q8: 67.7 },
    note: 'The repository is tagged fill-mask: its graph output is likely the vocabulary logits, not the hidden state, which then has to be taken as an inner output (not checked). A q4 file was not confirmed.',
  },
  {
    id: 'hf:Xenova/whisper-tiny',
    name: 'Whisper tiny (encoder)',
    modality: 'audio',
    task: 'speech recognition (multilingual); the encoder is used as the backbone',
    upstream: 'openai/whisper-tiny',
    onnxComponent: 'encoder_model',
    input: { modality: 'audio', sampleRate: 16_000, melBins: 80, windowSeconds: 30 },
    features: { source: 'encoder last_hidden_state [B, 1500, 384], averaged over the positions covering the clip', pooling: 'mean', dim: 384 },
    parameters: 8.2e6,
    licence: 'apache-2.0',
    downloadMB: { fp32: 32.9, fp16: 16.5, q8: 10.1 },
    note: 'Only onnx/encoder_model*.onnx is pulled, not the decoder. The encoder\'s parameter count is estimated from its fp32 file size (the whole model has 39 M). Clips are padded to 30 s (3000 mel frames), longer ones cut into 30 s chunks; the features average the encoder states that cover the clip, not the padding.',
  },
  {
    id: 'builtin:mobilenet-v2-1.4',
    name: 'MobileNetV2 α=1.4 (bundled)',
    modality: 'image',
    task: 'NSFW classification (fine-tuned from ImageNet), bundled from nsfwjs',
    upstream: 'nsfwjs mobilenet_v2_mid (TF-Hub graph model)',
    onnxComponent: 'model',
    input: { modality: 'image', size: 224, resize: 'stretch to 224×224, bilinear', mean: [0, 0, 0], std: [1, 1, 1] },
    features: { source: 'global average pool of the last convolution', pooling: 'global-average', dim: 1792 },
    parameters: 6.1e6,
    licence: 'MIT (nsfwjs)',
    downloadMB: {},
    note: 'Ships with headstart and works offline; converted to ONNX on first use. Fine-tuning for nudity detection blunts its general features. The parameter count is the Keras figure for the ImageNet model, with classifier.',
  },
  {
    id: 'builtin:mobilenet-v2-1.0',
    name: 'MobileNetV2 α=1.0 (bundled)',
    modality: 'image',
    task: 'NSFW classification (fine-tuned from ImageNet), bundled from nsfwjs',
    upstream: 'nsfwjs mobilenet_v2 (Keras layers model, uint8 weights)',
    onnxComponent: 'model',
    input: { modality: 'image', size: 224, resize: 'stretch to 224×224, bilinear', mean: [0, 0, 0], std: [1, 1, 1] },
    features: { source: 'layer flatten_1 (global average pool)', pooling: 'global-average', dim: 1280 },
    parameters: 3.5e6,
    licence: 'MIT (nsfwjs)',
    downloadMB: {},
    note: 'Ships with headstart and works offline; converted to ONNX on first use. Weights are stored as uint8. The parameter count is the Keras figure for the ImageNet model, with classifier.',
  },
  {
    id: 'builtin:inception-v3',
    name: 'InceptionV3 (bundled)',
    modality: 'image',
    task: 'NSFW classification (fine-tuned from ImageNet), bundled from nsfwjs',
    upstream: 'nsfwjs inception_v3 (Keras layers model)',
    onnxComponent: 'model',
    input: { modality: 'image', size: 299, resize: 'stretch to 299×299, bilinear', mean: [0, 0, 0], std: [1, 1, 1] },
    features: { source: 'layer flatten_1 (global average pool)', pooling: 'global-average', dim: 2048 },
    parameters: 23.9e6,
    licence: 'MIT (nsfwjs)',
    downloadMB: {},
    note: 'Ships with headstart and works offline; converted to ONNX on first use. The parameter count is the Keras figure for the ImageNet model, with classifier.',
  },
];

/** The catalog entry for a reference (`hf:owner/name[@rev]` or `builtin:name`), if it has one. */
export function findCatalogEntry(reference: string): CatalogEntry | undefined {
  const parsed = parseModelReference(reference);
  if (parsed.kind === 'hf') return catalogEntryForRepo(parsed.repo);
  if (parsed.kind === 'builtin') return CATALOG.find((entry) => entry.id === `builtin:${parsed.name}`);
  return undefined;
}

/** Repository ids are case-insensitive on the Hub. */
export function catalogEntryForRepo(repo: string): CatalogEntry | undefined {
  const id = `hf:${repo}`.toLowerCase();
  return CATALOG.find((entry) => entry.id.toLowerCase() === id);
}
