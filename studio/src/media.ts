import { announce, errorText } from './util.js';

/**
 * Webcam frames and microphone clips, recorded in the page: frames as JPEG blobs from a <video>,
 * audio as 16-bit PCM WAV (what `headstart train` reads), written here because the browser records
 * only compressed formats (MediaRecorder) or raw samples (Web Audio).
 */

export async function openCamera(video: HTMLVideoElement): Promise<MediaStream> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  video.srcObject = stream;
  video.muted = true;
  await video.play();
  return stream;
}

export function stopStream(stream: MediaStream | undefined): void {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** One video frame as a JPEG, centre-cropped to a square (what image backbones see anyway). */
export function grabFrame(video: HTMLVideoElement, size = 320): Promise<Blob> {
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  const side = Math.min(video.videoWidth, video.videoHeight);
  const context = canvas.getContext('2d')!;
  context.drawImage(video, (video.videoWidth - side) / 2, (video.videoHeight - side) / 2, side, side, 0, 0, size, size);
  return new Promise((resolve, reject) => canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the frame could not be encoded'))), 'image/jpeg', 0.9));
}

/** Records the microphone until `stop()`; resolves to a mono WAV. */
export async function recordMicrophone(): Promise<{ stop(): Promise<Blob>; cancel(): void }> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false }, video: false });
  const context = new AudioContext();
  // A context made after an await (getUserMedia) may start suspended, and a suspended one records nothing.
  await context.resume();
  const source = context.createMediaStreamSource(stream);
  // ScriptProcessorNode is deprecated but everywhere and needs no worklet module file; raw samples are all we need.
  const processor = context.createScriptProcessor(4096, 1, 1);
  const chunks: Float32Array[] = [];
  processor.onaudioprocess = (event) => chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
  source.connect(processor);
  processor.connect(context.destination);
  const close = () => {
    processor.disconnect();
    source.disconnect();
    stopStream(stream);
    void context.close();
  };
  return {
    async stop() {
      close();
      const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      const samples = new Float32Array(length);
      let offset = 0;
      for (const chunk of chunks) {
        samples.set(chunk, offset);
        offset += chunk.length;
      }
      return encodeWav(samples, context.sampleRate);
    },
    cancel: close,
  };
}

const WAV_HEADER_BYTES = 44;
type Recording = Awaited<ReturnType<typeof recordMicrophone>>;

/**
 * A hold-to-record button's microphone, shared by the data and test panels: `press()` opens it (and
 * says why when it cannot), `release()` gives the clip recorded since, `cancel()` drops it.
 */
export class HeldMicrophone {
  private recording?: Promise<Recording | undefined>;

  /** Opens the microphone; false (with the reason announced) when it could not be opened. */
  async press(): Promise<boolean> {
    this.recording ??= recordMicrophone().catch((error: unknown) => {
      announce(`The microphone could not be opened: ${errorText(error)}`, 'error');
      return undefined;
    });
    const opened = (await this.recording) !== undefined;
    if (!opened) this.recording = undefined;
    return opened;
  }

  /** The clip recorded since `press()`; undefined (said why when it is empty) when there is none. */
  async release(): Promise<Blob | undefined> {
    const recording = this.recording;
    this.recording = undefined;
    const clip = await (await recording)?.stop();
    // Released before the microphone delivered its first buffer: a header with no samples.
    if (clip && clip.size <= WAV_HEADER_BYTES) {
      announce('Nothing was recorded: hold the button until "recording…" shows.', 'error');
      return undefined;
    }
    return clip;
  }

  cancel(): void {
    void this.recording?.then((mic) => mic?.cancel());
    this.recording = undefined;
  }
}

/** Mono float samples as a 16-bit PCM RIFF/WAVE file. */
export function encodeWav(samples: Float32Array, sampleRate: number): Blob {
  const buffer = new ArrayBuffer(WAV_HEADER_BYTES + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset: number, value: string) => [...value].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, 'data');
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) view.setInt16(44 + i * 2, Math.round(Math.max(-1, Math.min(1, samples[i]!)) * 32767), true);
  return new Blob([buffer], { type: 'audio/wav' });
}
