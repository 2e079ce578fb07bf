import sharp from 'sharp';
import type { Box } from './boxes.js';

export interface DrawnBox {
  box: Box;
  /** Text drawn above the box ("dog 0.87"). */
  caption: string;
  /** Colour key: boxes of the same class share a colour. */
  colourKey: number;
  /** Dashed outline (e.g. ground truth beside predictions). */
  dashed?: boolean;
}

const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#bfef45', '#fabed4', '#469990', '#dcbeff', '#9a6324'];

/**
 * The image as displayed (EXIF orientation applied, as boxes are given) with boxes and captions drawn
 * on it, as JPEG. sharp composites an SVG overlay: libvips renders it, no canvas dependency.
 */
export async function drawBoxes(bytes: Uint8Array, boxes: DrawnBox[], options: { maxSide?: number } = {}): Promise<Buffer> {
  const base = sharp(bytes).rotate();
  const { data, info } = await base.toBuffer({ resolveWithObject: true });
  let { width, height } = info;
  let image = sharp(data);
  let scale = 1;
  if (options.maxSide && Math.max(width, height) > options.maxSide) {
    scale = options.maxSide / Math.max(width, height);
    width = Math.round(width * scale);
    height = Math.round(height * scale);
    image = image.resize(width, height, { fit: 'fill' });
  }
  const line = Math.max(2, Math.round(Math.min(width, height) / 200));
  const font = Math.max(11, Math.round(Math.min(width, height) / 36));
  const shapes = boxes.map(({ box, caption, colourKey, dashed }) => {
    const colour = PALETTE[colourKey % PALETTE.length]!;
    const [x1, y1, x2, y2] = box.map((v) => v * scale) as Box;
    const textY = y1 - font * 1.3 >= 0 ? y1 - font * 1.3 : y1;
    const textWidth = Math.ceil(caption.length * font * 0.6) + 6;
    return (
      `<rect x="${x1}" y="${y1}" width="${Math.max(1, x2 - x1)}" height="${Math.max(1, y2 - y1)}" fill="none" stroke="${colour}" stroke-width="${line}"${dashed ? ` stroke-dasharray="${line * 3},${line * 2}"` : ''}/>` +
      `<rect x="${x1}" y="${textY}" width="${textWidth}" height="${font * 1.3}" fill="${colour}"/>` +
      `<text x="${x1 + 3}" y="${textY + font}" font-family="sans-serif" font-size="${font}" fill="#fff">${escapeXml(caption)}</text>`
    );
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`;
  return image.composite([{ input: Buffer.from(svg), left: 0, top: 0 }]).jpeg({ quality: 90 }).toBuffer();
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}
