/**
 * Names that come from a browser and become paths: project ids, class names (folder names) and
 * example file names. Each is checked or rewritten so it is one plain path segment — no separators,
 * no `..`, no leading dot (dot-entries are the studio's own), no control characters — before it is
 * ever joined to a folder.
 */
import { createHash } from 'node:crypto';
import { HttpError } from '../serve/inputs.js';

const MAX_NAME = 80;
/** Letters and digits of any script, space, and a few punctuation marks; everything else is refused (classes) or replaced (files). */
const SAFE_CHARACTERS = /^[\p{L}\p{N} ._()+,-]+$/u;
const UNSAFE_CHARACTER = /[^\p{L}\p{N} ._()+,-]/gu;
/** Names Windows refuses whatever the extension, so a project copied there still opens. */
const RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;

export const PROJECT_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A project id from its display name: lower-case letters, digits and dashes. */
export function slugOf(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return slug || 'project';
}

export function checkProjectId(id: string): string {
  if (!PROJECT_ID.test(id)) throw new HttpError(404, 'unknown_project', `no project "${id.slice(0, 64)}"`);
  return id;
}

/** A class name as given, trimmed; refused (400) unless it is a safe folder name. */
export function checkClassName(raw: unknown): string {
  if (typeof raw !== 'string') throw new HttpError(400, 'bad_class_name', 'the class name must be a string');
  const name = raw.normalize('NFC').trim();
  if (!name) throw new HttpError(400, 'bad_class_name', 'the class name is empty');
  if (name.length > MAX_NAME) throw new HttpError(400, 'bad_class_name', `the class name is longer than ${MAX_NAME} characters`);
  if (name.startsWith('.') || !SAFE_CHARACTERS.test(name) || RESERVED.test(name) || /^(train|training|val|valid|validation|dev|test|testing)$/i.test(name)) {
    throw new HttpError(
      400,
      'bad_class_name',
      `"${name.slice(0, MAX_NAME)}" cannot be a class name: use letters, digits, spaces and . _ ( ) + , - (not starting with a dot, and not a split name like train or val)`,
    );
  }
  return name;
}

/**
 * A stored file name for an upload: the browser's name reduced to its last segment, unsafe
 * characters replaced, and the extension set from the detected content type (so `cat.png` holding
 * a JPEG is stored as `cat.jpg`, and nothing is stored under an extension it does not have).
 */
export function storedFileName(original: string | undefined, extension: string, content: Uint8Array): string {
  const last = (original ?? '').split(/[\\/]/).pop() ?? '';
  const stem = last
    .normalize('NFC')
    .replace(/\.[^.]*$/, '')
    .replace(UNSAFE_CHARACTER, '_')
    .replace(/^[._ ]+/, '')
    .trim()
    .slice(0, MAX_NAME - 20);
  const base = stem && !RESERVED.test(stem) ? stem : `example-${contentTag(content)}`;
  return `${base}${extension}`;
}

/** The same name made distinct from one already taken, by the content's hash. */
export function distinctFileName(name: string, content: Uint8Array): string {
  const dot = name.lastIndexOf('.');
  return `${name.slice(0, dot)}-${contentTag(content)}${name.slice(dot)}`;
}

/** An example file name as it appears in URLs: refused unless it is one plain segment. */
export function checkExampleName(name: string): string {
  if (!name || name.length > MAX_NAME + 20 || name.startsWith('.') || !SAFE_CHARACTERS.test(name)) {
    throw new HttpError(404, 'unknown_example', `no example "${name.slice(0, MAX_NAME)}"`);
  }
  return name;
}

export function contentTag(content: Uint8Array | string): string {
  return createHash('sha256').update(content).digest('hex').slice(0, 10);
}
