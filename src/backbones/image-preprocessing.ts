/**
 * Everything needed to turn an image file into the tensor a vision backbone expects. Recorded in the
 * model folder, so prediction prepares pixels exactly as training did.
 */
export interface ImagePreprocessing {
  kind: 'image';
  /** Final tensor size. */
  width: number;
  height: number;
  /**
   * - `stretch`: resize straight to width×height (ViT, nsfwjs);
   * - `shortest-edge-crop`: resize the shortest edge to `shortestEdge`, then centre-crop (ResNet, ConvNeXt);
   * - `center-square-crop`: crop the centred square, then resize (Teachable Machine).
   */
  resize: 'stretch' | 'shortest-edge-crop' | 'center-square-crop';
  shortestEdge?: number;
  interpolation: 'nearest' | 'bilinear' | 'bicubic';
  /** pixel' = (pixel * rescale - mean[c]) / std[c] */
  rescale: number;
  mean: [number, number, number];
  std: [number, number, number];
  layout: 'NCHW' | 'NHWC';
}
