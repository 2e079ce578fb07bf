/** Small helpers shared by the panels. */
import { LitElement } from 'lit';

/** Components render into the page itself (no shadow root): one stylesheet, and tests and assistive tech see one tree. */
export class LightElement extends LitElement {
  protected override createRenderRoot(): HTMLElement {
    return this;
  }
}

export const percent = (x: number | undefined | null, digits = 1) => (x === undefined || x === null || !Number.isFinite(x) ? 'n/a' : `${(100 * x).toFixed(digits)} %`);

/** Tells the rest of the page (and screen readers, through the live region) what happened. */
export function announce(message: string, level: 'info' | 'error' = 'info'): void {
  window.dispatchEvent(new CustomEvent('hs-announce', { detail: { message, level } }));
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Files of a drop, including whole folders (each file with its path inside the dropped folder). */
export async function droppedFiles(transfer: DataTransfer): Promise<{ file: File; path: string }[]> {
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry?.()).filter((entry): entry is FileSystemEntry => Boolean(entry));
  if (entries.length === 0) return [...transfer.files].map((file) => ({ file, path: file.name }));
  const found: { file: File; path: string }[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      found.push({ file, path: `${prefix}${entry.name}` });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns at most ~100 entries per call: read until it returns none.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, '');
  return found;
}

/** Files grouped by class folder: `<class>/<file>` or `<root>/<class>/<file>` (an ImageFolder dropped whole). */
export function byClassFolder(files: { file: File; path: string }[]): Map<string, File[]> {
  const groups = new Map<string, File[]>();
  const depth = Math.max(...files.map((f) => f.path.split('/').length));
  for (const { file, path } of files) {
    const parts = path.split('/');
    if (file.name.startsWith('.') || parts.length < 2) continue;
    // A dropped root folder holding class folders: skip the root (and a train/ or val/ level).
    const name = parts[parts.length - 2]!;
    if (depth >= 2) groups.set(name, [...(groups.get(name) ?? []), file]);
  }
  return groups;
}

/** Uploads in batches, so a folder of hundreds of photos stays within the server's per-request limits. */
export async function inBatches<T>(items: T[], size: number, run: (batch: T[]) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += size) await run(items.slice(start, start + size));
}
