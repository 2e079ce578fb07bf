/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
 * mapping names to dtype, shape and byte range, then the raw tensors. Written by hand because it is
 * this small; the `safetensors` Python package reads it (test/generate-finetune.test.ts checks with PEFT).
 */
export interface SafeTensor {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = Object.keys(metadata).length ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const name of names) {
    const bytes = tensors[name]!.data.byteLength;
    header[name] = { dtype: 'F32', shape: tensors[name]!.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // The data that follows starts 8-byte aligned, as the reference writer pads it.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const data = tensors[name]!.data;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array, origin: string): Record<string, SafeTensor> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = Number(view.getBigUint64(0, true));
  if (8 + length > bytes.length) throw new Error(`${origin}: truncated safetensors header`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<string, any>;
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (entry.dtype !== 'F32') throw new Error(`${origin}: ${name} is ${entry.dtype}; only F32 is read`);
    const [start, end] = entry.data_offsets as [number, number];
    const slice = bytes.slice(8 + length + start, 8 + length + end);
    tensors[name] = { shape: entry.shape, data: new Float32Array(slice.buffer, slice.byteOffset, (end - start) / 4) };
  }
  return tensors;
}
