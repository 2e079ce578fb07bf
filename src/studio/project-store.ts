/**
 * Studio projects on disk. A project is a folder in a layout `headstart train` already reads, plus
 * a small project file, so the studio adds nothing a terminal user cannot train on:
 *
 *   <root>/<id>/headstart-project.json   name, task, classes (their order; text classes may be empty)
 *   <root>/<id>/<class>/*.jpg|*.wav      image and audio examples (ImageFolder layout)
 *   <root>/<id>/train.csv                text examples: text,label
 *   <root>/<id>/.studio/                 the studio's own: last model, training state, export
 *
 * Every write is atomic (a file written and renamed, a folder renamed), and a project is reconciled
 * with its folders when opened, so a crash between two steps of one change loses nothing: a class
 * folder without a place in the project file is added back, a listed class without a folder gets one.
 * Changes to one project are serialised.
 */
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { extname, join } from 'node:path';
import type { Modality } from '../backbones/backbone.js';
import { AUDIO_EXTENSIONS } from '../data/audio-folder.js';
import { IMAGE_EXTENSIONS } from '../data/image-folder.js';
import { readTextRecords } from '../data/text-dataset.js';
import { HttpError } from '../serve/inputs.js';
import { writeFileAtomic } from '../util/atomic.js';
import { checkClassName, checkExampleName, checkProjectId, contentTag, distinctFileName, slugOf, storedFileName } from './names.js';
import { checkUpload, type UploadLimits } from './uploads.js';

export const PROJECT_FILE = 'headstart-project.json';
export const PROJECT_FORMAT = 'headstart-studio-project';
/** The studio's own files inside a project; a dot-folder, so no dataset reader takes it for a class. */
export const STUDIO_DIR = '.studio';
export const TEXT_FILE = 'train.csv';
export const TASKS: readonly Modality[] = ['image', 'audio', 'text'];

export interface ProjectFile {
  format: typeof PROJECT_FORMAT;
  version: 1;
  name: string;
  task: Modality;
  classes: string[];
  createdAt: string;
}

export interface Example {
  /** The file name (images, audio) or a hash of the text (text): what URLs name it by. */
  id: string;
  text?: string;
}

export interface UploadedFile {
  name: string;
  bytes: Uint8Array;
}

export class ProjectStore {
  private readonly open = new Map<string, Project>();

  constructor(readonly root: string) {}

  async list(): Promise<Awaited<ReturnType<Project['summary']>>[]> {
    await mkdir(this.root, { recursive: true });
    const projects = [];
    for (const entry of await readdir(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || !PROJECT_ID_TEST(entry.name)) continue;
      if (!(await stat(join(this.root, entry.name, PROJECT_FILE)).catch(() => undefined))) continue;
      projects.push(await (await this.get(entry.name)).summary());
    }
    return projects.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async create(name: unknown, task: unknown): Promise<Project> {
    if (typeof name !== 'string' || !name.trim() || name.length > 100) throw new HttpError(400, 'bad_name', 'the project needs a name of 1 to 100 characters');
    if (typeof task !== 'string' || !TASKS.includes(task as Modality)) throw new HttpError(400, 'bad_task', `the task must be one of ${TASKS.join(', ')}`);
    await mkdir(this.root, { recursive: true });
    const base = slugOf(name);
    for (let n = 1; ; n++) {
      const id = n === 1 ? base : `${base}-${n}`;
      const dir = join(this.root, id);
      // mkdir without `recursive` fails when the folder exists: two creations never share one.
      const made = await mkdir(dir).then(() => true, (error: NodeJS.ErrnoException) => (error.code === 'EEXIST' ? false : Promise.reject(error)));
      if (!made) continue;
      const file: ProjectFile = { format: PROJECT_FORMAT, version: 1, name: name.trim(), task: task as Modality, classes: [], createdAt: new Date().toISOString() };
      await writeFileAtomic(join(dir, PROJECT_FILE), `${JSON.stringify(file, null, 2)}\n`);
      return this.get(id);
    }
  }

  /** The project with this id (404 when there is none). */
  async get(id: string): Promise<Project> {
    checkProjectId(id);
    let project = this.open.get(id);
    if (!project) {
      const dir = join(this.root, id);
      project = new Project(id, dir, await readProjectFile(dir, id));
      await project.reconcile();
      this.open.set(id, project);
    }
    return project;
  }
}

const PROJECT_ID_TEST = (name: string) => /^[a-z0-9][a-z0-9-]{0,62}$/.test(name);

async function readProjectFile(dir: string, id: string): Promise<ProjectFile> {
  let text: string;
  try {
    text = await readFile(join(dir, PROJECT_FILE), 'utf8');
  } catch {
    throw new HttpError(404, 'unknown_project', `no project "${id}"`);
  }
  let file: ProjectFile;
  try {
    file = JSON.parse(text) as ProjectFile;
  } catch (error) {
    throw new HttpError(500, 'broken_project', `${join(dir, PROJECT_FILE)} is not valid JSON: ${(error as Error).message}`);
  }
  if (file.format !== PROJECT_FORMAT || !TASKS.includes(file.task) || !Array.isArray(file.classes)) {
    throw new HttpError(500, 'broken_project', `${join(dir, PROJECT_FILE)} is not a headstart studio project file`);
  }
  return file;
}

export class Project {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly dir: string,
    private file: ProjectFile,
  ) {}

  get task(): Modality {
    return this.file.task;
  }

  get name(): string {
    return this.file.name;
  }

  get classes(): string[] {
    return [...this.file.classes];
  }

  get studioDir(): string {
    return join(this.dir, STUDIO_DIR);
  }

  /** Runs one change at a time, in order, so two requests never interleave their writes. */
  serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.queue.then(change, change);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async summary() {
    const counts = await this.counts();
    return {
      id: this.id,
      name: this.file.name,
      task: this.file.task,
      createdAt: this.file.createdAt,
      classes: this.file.classes.map((name, i) => ({ name, examples: counts[i]! })),
    };
  }

  /** Examples per class, in class order. */
  async counts(): Promise<number[]> {
    if (this.task === 'text') {
      const rows = await this.readTexts();
      return this.file.classes.map((name) => rows.filter((row) => row.label === name).length);
    }
    return Promise.all(this.file.classes.map(async (name) => (await this.exampleFiles(name)).length));
  }

  /** Brings the project file and the folders back in agreement after a crash between two steps. */
  async reconcile(): Promise<void> {
    const found = this.task === 'text' ? [...new Set((await this.readTexts()).map((row) => row.label))] : await this.classFolders();
    const missing = found.filter((name) => !this.file.classes.includes(name)).sort();
    if (this.task !== 'text') for (const name of this.file.classes) await mkdir(join(this.dir, name), { recursive: true });
    if (missing.length) await this.writeFile({ ...this.file, classes: [...this.file.classes, ...missing] });
  }

  addClass(raw: unknown): Promise<string> {
    return this.serial(async () => {
      const name = checkClassName(raw);
      if (this.has(name)) throw new HttpError(409, 'class_exists', `there is already a class "${name}"`);
      if (this.task !== 'text') await mkdir(join(this.dir, name), { recursive: true });
      await this.writeFile({ ...this.file, classes: [...this.file.classes, name] });
      return name;
    });
  }

  renameClass(from: string, raw: unknown): Promise<string> {
    return this.serial(async () => {
      this.checkClass(from);
      const to = checkClassName(raw);
      if (to === from) return to;
      // Case-only renames are allowed; anything else must not collide.
      if (this.has(to) && to.toLowerCase() !== from.toLowerCase()) throw new HttpError(409, 'class_exists', `there is already a class "${to}"`);
      if (this.task === 'text') await this.writeTexts((await this.readTexts()).map((row) => (row.label === from ? { ...row, label: to } : row)));
      else await rename(join(this.dir, from), join(this.dir, to));
      await this.writeFile({ ...this.file, classes: this.file.classes.map((name) => (name === from ? to : name)) });
      return to;
    });
  }

  deleteClass(name: string): Promise<void> {
    return this.serial(async () => {
      this.checkClass(name);
      // The folder leaves by one rename (into the bin, then removed); a crash before the project file is
      // rewritten leaves the class listed, and reconcile gives it an empty folder again.
      if (this.task === 'text') await this.writeTexts((await this.readTexts()).filter((row) => row.label !== name));
      else {
        const bin = join(this.studioDir, `deleted-${Date.now()}-${randomBytes(3).toString('hex')}`);
        await mkdir(this.studioDir, { recursive: true });
        await rename(join(this.dir, name), bin);
        await rm(bin, { recursive: true, force: true });
      }
      await this.writeFile({ ...this.file, classes: this.file.classes.filter((c) => c !== name) });
    });
  }

  async listExamples(name: string): Promise<Example[]> {
    this.checkClass(name);
    if (this.task === 'text') return (await this.readTexts()).filter((row) => row.label === name).map((row) => ({ id: contentTag(row.text), text: row.text }));
    return (await this.exampleFiles(name)).map((id) => ({ id }));
  }

  /** Stores uploaded files in a class, each checked; a file identical to one already there is skipped. */
  addFiles(name: string, files: UploadedFile[], limits: UploadLimits): Promise<{ added: string[]; duplicates: string[] }> {
    return this.serial(async () => {
      this.checkClass(name);
      if (this.task === 'text') throw new HttpError(415, 'unsupported_media_type', 'a text project takes lines of text ({"texts": […]}), not files');
      // Every file is checked before any is written: a bad file fails the request and stores nothing.
      const checked = await Promise.all(files.map(async (file) => ({ ...file, extension: await checkUpload(this.task, file.bytes, file.name, limits) })));
      const folder = join(this.dir, name);
      const added: string[] = [];
      const duplicates: string[] = [];
      for (const file of checked) {
        let stored = storedFileName(file.name, file.extension, file.bytes);
        const existing = await readFile(join(folder, stored)).catch(() => undefined);
        if (existing && Buffer.compare(existing, file.bytes) === 0) {
          duplicates.push(stored);
          continue;
        }
        if (existing) stored = distinctFileName(stored, file.bytes);
        await writeFileAtomic(join(folder, stored), file.bytes);
        added.push(stored);
      }
      return { added, duplicates };
    });
  }

  /** Adds lines of text to a class; blank lines and texts already in the class are skipped. */
  addTexts(name: string, texts: unknown): Promise<{ added: number; duplicates: number }> {
    return this.serial(async () => {
      this.checkClass(name);
      if (this.task !== 'text') throw new HttpError(415, 'unsupported_media_type', `a${this.task === 'image' ? 'n' : ''} ${this.task} project takes files (multipart, field "files")`);
      if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) throw new HttpError(400, 'bad_json', 'expected {"texts": ["…", …]}');
      const rows = await this.readTexts();
      const seen = new Set(rows.filter((row) => row.label === name).map((row) => row.text));
      let added = 0;
      let duplicates = 0;
      for (const raw of texts as string[]) {
        const text = raw.replace(/\s+/g, ' ').trim();
        if (!text) continue;
        if (text.length > 10_000) throw new HttpError(413, 'text_too_long', `a text of ${text.length} characters; the limit is 10000`, 'text_too_long');
        if (seen.has(text)) {
          duplicates++;
          continue;
        }
        seen.add(text);
        rows.push({ text, label: name });
        added++;
      }
      if (added) await this.writeTexts(rows);
      return { added, duplicates };
    });
  }

  /** Imports a labelled CSV/TSV/JSONL file (columns detected as `headstart train` does); its labels become classes. */
  importTexts(bytes: Uint8Array, fileName: string): Promise<{ added: number; classes: string[] }> {
    return this.serial(async () => {
      if (this.task !== 'text') throw new HttpError(415, 'unsupported_media_type', 'only text projects import CSV files; drop class folders into an image or audio project');
      const extension = extname(fileName).toLowerCase();
      const staged = join(this.studioDir, `import-${randomBytes(4).toString('hex')}${['.tsv', '.jsonl', '.ndjson'].includes(extension) ? extension : '.csv'}`);
      await writeFileAtomic(staged, bytes, { durable: false });
      let records;
      try {
        ({ records } = await readTextRecords(staged));
      } finally {
        await rm(staged, { force: true });
      }
      if (records.length === 0) throw new HttpError(400, 'no_rows', `"${fileName.slice(0, 100)}" holds no labelled texts`);
      const labels = [...new Set(records.map((r) => r.label))].map((label) => checkClassName(label));
      const rows = await this.readTexts();
      const seen = new Set(rows.map((row) => `${row.label}\u0000${row.text}`));
      let added = 0;
      for (const record of records) {
        const text = record.text.replace(/\s+/g, ' ').trim();
        const key = `${record.label}\u0000${text}`;
        if (!text || seen.has(key)) continue;
        seen.add(key);
        rows.push({ text, label: record.label });
        added++;
      }
      await this.writeTexts(rows);
      const classes = [...this.file.classes, ...labels.filter((label) => !this.file.classes.includes(label))];
      await this.writeFile({ ...this.file, classes });
      return { added, classes: labels };
    });
  }

  /** Moves an example to another class (relabels it). */
  moveExample(name: string, id: string, rawTo: unknown): Promise<string> {
    return this.serial(async () => {
      this.checkClass(name);
      if (typeof rawTo !== 'string') throw new HttpError(400, 'bad_class_name', 'give the class to move to: {"to": "<class>"}');
      const to = rawTo;
      this.checkClass(to);
      if (this.task === 'text') {
        const rows = await this.readTexts();
        const row = rows.find((r) => r.label === name && contentTag(r.text) === id);
        if (!row) throw new HttpError(404, 'unknown_example', `no example "${id.slice(0, 40)}" in "${name}"`);
        const duplicate = rows.some((r) => r.label === to && r.text === row.text);
        await this.writeTexts(duplicate ? rows.filter((r) => r !== row) : rows.map((r) => (r === row ? { ...r, label: to } : r)));
        return id;
      }
      const from = await this.examplePath(name, id);
      let target = id;
      const taken = await stat(join(this.dir, to, target)).catch(() => undefined);
      if (taken) target = distinctFileName(id, await readFile(from));
      await rename(from, join(this.dir, to, target));
      return target;
    });
  }

  deleteExample(name: string, id: string): Promise<void> {
    return this.serial(async () => {
      this.checkClass(name);
      if (this.task === 'text') {
        const rows = await this.readTexts();
        const kept = rows.filter((r) => !(r.label === name && contentTag(r.text) === id));
        if (kept.length === rows.length) throw new HttpError(404, 'unknown_example', `no example "${id.slice(0, 40)}" in "${name}"`);
        await this.writeTexts(kept);
        return;
      }
      await rm(await this.examplePath(name, id));
    });
  }

  /** The path of one stored example file; only names the class folder lists are ever resolved. */
  async examplePath(name: string, id: string): Promise<string> {
    this.checkClass(name);
    checkExampleName(id);
    if (!(await this.exampleFiles(name)).includes(id)) throw new HttpError(404, 'unknown_example', `no example "${id.slice(0, 80)}" in "${name}"`);
    return join(this.dir, name, id);
  }

  private has(name: string): boolean {
    return this.file.classes.some((c) => c.toLowerCase() === name.toLowerCase());
  }

  checkClass(name: string): void {
    if (!this.file.classes.includes(name)) throw new HttpError(404, 'unknown_class', `no class "${name.slice(0, 80)}" in project "${this.id}"`);
  }

  private async classFolders(): Promise<string[]> {
    const entries = await readdir(this.dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  }

  private async exampleFiles(name: string): Promise<string[]> {
    const extensions: ReadonlySet<string> = this.task === 'audio' ? AUDIO_EXTENSIONS : IMAGE_EXTENSIONS;
    const entries = await readdir(join(this.dir, name), { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isFile() && !e.name.startsWith('.') && extensions.has(extname(e.name).toLowerCase()))
      .map((e) => e.name)
      .sort();
  }

  private async readTexts(): Promise<{ text: string; label: string }[]> {
    const path = join(this.dir, TEXT_FILE);
    if (!(await stat(path).catch(() => undefined))) return [];
    const { records } = await readTextRecords(path, { textColumn: 'text', labelColumn: 'label', header: true });
    return records.map(({ text, label }) => ({ text, label }));
  }

  private async writeTexts(rows: { text: string; label: string }[]): Promise<void> {
    const lines = ['text,label', ...rows.map((row) => `${csvField(row.text)},${csvField(row.label)}`)];
    await writeFileAtomic(join(this.dir, TEXT_FILE), `${lines.join('\n')}\n`);
  }

  private async writeFile(file: ProjectFile): Promise<void> {
    await writeFileAtomic(join(this.dir, PROJECT_FILE), `${JSON.stringify(file, null, 2)}\n`);
    this.file = file;
  }
}

/** RFC 4180 quoting, hand-written since csv-parse (which reads these files) has no writer: every field quoted, quotes doubled. */
function csvField(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}
