import wavefile from 'wavefile';
import { dataError, messageOf } from '../util/errors.js';

const { WaveFile } = wavefile;

/** wavefile as imported here (the export writes its probe clips with it). */
export const wavefileModule = wavefile;

/** A decoded clip: one Float32Array per channel, samples in [-1, 1]. */
export interface DecodedAudio {
  sampleRate: number;
  channels: Float32Array[];
  /** For reports: "PCM 16-bit", "IEEE float 32-bit", "µ-law 8-bit"… */
  encoding: string;
}

const WAVE_FORMAT = { pcm: 1, float: 3, alaw: 6, mulaw: 7, extensible: 0xfffe } as const;

interface WavFmt {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  bitsPerSample: number;
  subformat: number[];
}

/**
 * Decodes a WAV file's bytes: `wavefile` parses the container (RIFF/RIFX/RF64, plain or
 * WAVE_FORMAT_EXTENSIBLE headers) and decodes A-law and µ-law; integer PCM of any width
 * (8-bit unsigned, 16/24/32-bit signed…) and IEEE float 32/64-bit samples are read here. A file that
 * is not a WAV, or whose data chunk is cut short, is an error whose message says what is wrong
 * ("cannot decode WAV: …").
 */
export function decodeWav(bytes: Uint8Array): DecodedAudio {
  let wav: InstanceType<typeof WaveFile>;
  try {
    wav = new WaveFile(bytes);
  } catch (error) {
    throw dataError(`cannot decode WAV: ${messageOf(error)}`);
  }
  const fmt = wav.fmt as WavFmt;
  const data = wav.data as { chunkSize: number; samples: Uint8Array };
  const { numChannels: channelCount, sampleRate, bitsPerSample } = fmt;
  if (!(channelCount >= 1)) throw dataError(`cannot decode WAV: ${channelCount} channels`);
  if (!(sampleRate >= 1)) throw dataError(`cannot decode WAV: sample rate ${sampleRate} Hz`);
  // wavefile reads what is there; a data chunk declaring more bytes than the file holds was cut off.
  // (0xFFFFFFFF is what streaming writers leave when they cannot seek back: size unknown, read to the end.)
  if (data.samples.length < data.chunkSize && data.chunkSize !== 0xffffffff) {
    throw dataError(`cannot decode WAV: truncated (the data chunk declares ${data.chunkSize} bytes, the file holds ${data.samples.length})`);
  }
  // The extensible header names the real format in its sub-format GUID, whose first field is the plain code.
  const format = fmt.audioFormat === WAVE_FORMAT.extensible ? fmt.subformat[0] ?? 0 : fmt.audioFormat;

  let channels: Float32Array[];
  let encoding: string;
  try {
    if (format === WAVE_FORMAT.pcm || format === WAVE_FORMAT.float) {
      encoding = `${format === WAVE_FORMAT.float ? 'IEEE float' : 'PCM'} ${bitsPerSample}-bit`;
      channels = readLinearSamples(data.samples, channelCount, bitsPerSample, format === WAVE_FORMAT.float, wav.container === 'RIFX');
    } else if (format === WAVE_FORMAT.alaw || format === WAVE_FORMAT.mulaw) {
      encoding = format === WAVE_FORMAT.alaw ? 'A-law 8-bit' : 'µ-law 8-bit';
      if (format === WAVE_FORMAT.alaw) wav.fromALaw('16');
      else wav.fromMuLaw('16');
      const samples = wav.getSamples(false, Float64Array) as unknown as Float64Array | Float64Array[];
      channels = (channelCount === 1 ? [samples as Float64Array] : (samples as Float64Array[])).map((channel) => Float32Array.from(channel, (v) => v / 32768));
    } else {
      throw new Error(`unsupported encoding (WAVE format code 0x${format.toString(16)}); expected PCM, IEEE float, A-law or µ-law`);
    }
  } catch (error) {
    throw dataError(`cannot decode WAV: ${messageOf(error)}`);
  }
  if (channels[0]!.length === 0) throw dataError('cannot decode WAV: the data chunk holds no samples');
  return { sampleRate, channels, encoding };
}

/**
 * Linear PCM and float samples, read straight from the data chunk wavefile located, because
 * wavefile's `getSamples` is ~7× slower (591–739 ms against 74–115 ms for 10 s of 44.1 kHz stereo,
 * same run) and takes WAVE_FORMAT_EXTENSIBLE float files for integers. Integers are left-justified
 * in whole bytes (per the WAV spec), so any width scales by its container; 8-bit samples are
 * unsigned with 128 as silence.
 */
function readLinearSamples(bytes: Uint8Array, channelCount: number, bits: number, float: boolean, bigEndian: boolean): Float32Array[] {
  if (float && bits !== 32 && bits !== 64) throw new Error(`IEEE float samples of ${bits} bits; expected 32 or 64`);
  if (!float && !(bits >= 1 && bits <= 32)) throw new Error(`integer samples of ${bits} bits; expected 8 to 32`);
  const width = Math.ceil(bits / 8);
  const frames = Math.floor(bytes.length / (width * channelCount));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const little = !bigEndian;
  const scale = 2 ** (8 * width - 1);
  const read: (offset: number) => number = float
    ? width === 4
      ? (offset) => view.getFloat32(offset, little)
      : (offset) => view.getFloat64(offset, little)
    : width === 1
      ? (offset) => (view.getUint8(offset) - 128) / scale
      : width === 2
        ? (offset) => view.getInt16(offset, little) / scale
        : width === 3
          ? (offset) => (little ? view.getUint16(offset, true) | (view.getInt8(offset + 2) << 16) : (view.getInt8(offset) << 16) | view.getUint16(offset + 1, false)) / scale
          : (offset) => view.getInt32(offset, little) / scale;
  const channels = Array.from({ length: channelCount }, () => new Float32Array(frames));
  for (let frame = 0, offset = 0; frame < frames; frame++) {
    for (let c = 0; c < channelCount; c++, offset += width) channels[c]![frame] = read(offset);
  }
  return channels;
}

// Shared with headstart/web, which downmixes decoded clips the same way.
export { downmix } from '../web/resample.js';
