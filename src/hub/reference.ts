import { usageError } from '../util/errors.js';

/** What a user may write wherever a model is expected. */
export type ModelReference =
  | { kind: 'hf'; repo: string; revision: string }
  | { kind: 'builtin'; name: string }
  | { kind: 'tfjs'; path: string }
  | { kind: 'path'; path: string };

export const DEFAULT_REVISION = 'main';

const HF_FORMAT = 'hf:<owner>/<name>[@<revision>], e.g. hf:Xenova/resnet-18 or hf:Xenova/resnet-18@main';

/**
 * `hf:<owner>/<repo>[@<revision>]`, `builtin:<name>`, `tfjs:<path-or-url>`; anything else is a local path.
 * Only the syntax is checked here: whether the model exists is for whoever opens it.
 */
export function parseModelReference(reference: string): ModelReference {
  if (typeof reference !== 'string' || reference.trim() === '') throw usageError('empty model reference');
  if (reference.startsWith('hf:')) {
    const body = reference.slice('hf:'.length);
    const at = body.indexOf('@');
    const repo = at < 0 ? body : body.slice(0, at);
    const revision = at < 0 ? DEFAULT_REVISION : body.slice(at + 1);
    if (at >= 0 && revision === '') throw usageError(`"${reference}": empty revision after "@"; expected ${HF_FORMAT}`);
    checkRepoId(repo, reference);
    checkRevision(revision, reference);
    return { kind: 'hf', repo, revision };
  }
  if (reference.startsWith('builtin:')) {
    const name = reference.slice('builtin:'.length);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
      throw usageError(`"${reference}": expected builtin:<name>, e.g. builtin:mobilenet-v2-1.4`);
    }
    return { kind: 'builtin', name };
  }
  if (reference.startsWith('tfjs:')) {
    const path = reference.slice('tfjs:'.length);
    if (path.trim() === '') throw usageError(`"${reference}": expected tfjs:<model.json, folder or URL>`);
    return { kind: 'tfjs', path };
  }
  return { kind: 'path', path: reference };
}

export function formatModelReference(reference: ModelReference): string {
  switch (reference.kind) {
    case 'hf':
      return reference.revision === DEFAULT_REVISION ? `hf:${reference.repo}` : `hf:${reference.repo}@${reference.revision}`;
    case 'builtin':
      return `builtin:${reference.name}`;
    case 'tfjs':
      return `tfjs:${reference.path}`;
    case 'path':
      return reference.path;
  }
}

/**
 * The Hub's rules for repository ids (as `huggingface_hub.validate_repo_id` applies them): `owner/name`,
 * letters, digits, `-`, `_`, `.`, at most 96 characters per part, no `--` or `..`. The id becomes a folder
 * name in the cache, so anything looser could escape it.
 */
export function checkRepoId(repo: string, shownAs: string = repo): void {
  const parts = repo.split('/');
  const problem =
    parts.length !== 2
      ? 'expected exactly one "/" between owner and name'
      : parts.some((p) => p.length === 0)
        ? 'owner and name must not be empty'
        : parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))
          ? 'only letters, digits, "-", "_" and "." are allowed'
          : parts.some((p) => p.length > 96)
            ? 'owner and name are at most 96 characters each'
            : parts.some((p) => /^[-.]|[-.]$/.test(p))
              ? 'owner and name must not start or end with "-" or "."'
              : repo.includes('--') || repo.includes('..')
                ? '"--" and ".." are not allowed'
                : repo.endsWith('.git')
                  ? 'must not end with ".git"'
                  : undefined;
  if (problem) throw usageError(`"${shownAs}" is not a Hugging Face model id: ${problem}; expected ${HF_FORMAT}`);
}

/**
 * A branch, tag or commit. It names a file under `refs/` in the cache, so it may contain "/" (e.g.
 * `refs/pr/1`) but no empty, "." or ".." segments.
 */
export function checkRevision(revision: string, shownAs: string = revision): void {
  const bad =
    revision.length === 0 ||
    revision.length > 255 ||
    /[\s\\:~^?*[\x00-\x1f\x7f]/.test(revision) ||
    revision.split('/').some((segment) => segment === '' || segment === '.' || segment === '..');
  if (bad) throw usageError(`"${shownAs}": "${revision}" is not a valid revision (a branch, tag or commit hash)`);
}

export const isCommitHash = (revision: string): boolean => /^[0-9a-f]{40}$/.test(revision);
