import { Command, Option } from 'commander';
import { HeadstartError, usageError } from '../util/errors.js';
import { consoleReporter } from '../util/progress.js';
import { emit, hubOptionsOf, withHubOptions, type HubCliOptions } from './common.js';
import { CATALOG, findCatalogEntry, type CatalogEntry } from '../hub/catalog.js';
import { RepoCache, hubCacheDir, removeRepoCache, scanHubCache, scanRepo, type CachedRepo } from '../hub/cache.js';
import { formatBytes } from '../hub/download.js';
import { ONNX_DTYPES, type OnnxDtype } from '../hub/files.js';
import { liveLocks } from '../hub/lock.js';
import { pullModel } from '../hub/pull.js';
import { parseModelReference, type ModelReference } from '../hub/reference.js';

interface ModelsOptions {
  json?: boolean;
  quiet?: boolean;
  hubCache?: string;
}

interface PullCommandOptions extends ModelsOptions, HubCliOptions {
  revision?: string;
  dtype?: OnnxDtype;
}

/** `headstart models list|pull|info|rm`: the recommended backbones and the Hugging Face cache. */
export function modelsCommand(): Command {
  const models = new Command('models').description('list recommended backbones, pull models from the Hugging Face Hub, manage the cache');

  models.addCommand(
    withModelsOptions(new Command('list').description('the recommended backbones, and what is in the cache with sizes')).action(
      async (options: ModelsOptions) => {
        const dir = hubCacheDir(options.hubCache);
        const cached = await scanHubCache(dir);
        const cachedById = new Map(cached.map((repo) => [`hf:${repo.repo}`.toLowerCase(), repo]));
        emit(
          options,
          {
            catalog: CATALOG.map((entry) => ({ ...entry, cached: cachedById.has(entry.id.toLowerCase()) })),
            cache: { dir, repos: cached.map(cachedJson) },
          },
          () => [formatCatalog(CATALOG, cachedById), '', formatCache(dir, cached)].join('\n'),
        );
      },
    ),
  );

  models.addCommand(
    withModelsOptions(
      withHubOptions(
        new Command('pull')
          .description('download a model from the Hugging Face Hub into the cache (shared with Python\'s huggingface_hub)')
          .argument('<id>', 'hf:<owner>/<name>[@<revision>] (the hf: prefix is optional here)')
          .option('--revision <rev>', 'branch, tag or commit (default main)')
          .addOption(new Option('--dtype <dtype>', 'which ONNX weights').choices(ONNX_DTYPES).default('fp32')),
      ),
    ).action(async (id: string, options: PullCommandOptions) => {
      const reference = hubReference(id);
      if (options.revision && id.includes('@') && options.revision !== reference.revision) {
        throw usageError(`${id}: the revision is given twice ("@${reference.revision}" and --revision ${options.revision})`);
      }
      const revision = options.revision ?? reference.revision;
      const pulled = await pullModel(reference.repo, {
        revision,
        dtype: options.dtype,
        ...hubOptionsOf(options),
        cacheDir: options.hubCache,
        reporter: consoleReporter({ quiet: options.quiet }),
      });
      emit(options, { id: `hf:${pulled.repo}`, ...pulled }, () =>
        [
          `hf:${pulled.repo}@${pulled.revision} (commit ${pulled.commit.slice(0, 10)}) is in ${pulled.snapshotDir}`,
          ...pulled.files.map((file) => `  ${file}`),
          '',
          `use it with: --backbone hf:${pulled.repo}${revision === 'main' ? '' : `@${revision}`}`,
        ].join('\n'),
      );
    }),
  );

  models.addCommand(
    withModelsOptions(
      new Command('info')
        .description('what the catalog knows about a model, and what of it is in the cache (no network)')
        .argument('<id>', 'hf:<owner>/<name> or builtin:<name>'),
    ).action(async (id: string, options: ModelsOptions) => {
      const parsed = parseModelReference(hubId(id));
      const entry = findCatalogEntry(hubId(id));
      if (parsed.kind === 'builtin') {
        if (!entry) throw usageError(`unknown builtin "${id}"; builtins: ${CATALOG.filter((e) => e.id.startsWith('builtin:')).map((e) => e.id).join(', ')}`);
        emit(options, { id: entry.id, catalog: entry, cache: null }, () => [formatEntry(entry), '', 'bundled with headstart: nothing to download'].join('\n'));
        return;
      }
      if (parsed.kind !== 'hf') throw usageError(`${id}: models info describes hf:<owner>/<name> and builtin:<name> models`);
      const reference = parsed;
      const dir = hubCacheDir(options.hubCache);
      const cached = await scanRepo(new RepoCache(dir, reference.repo));
      const inCache = cached.revisions.length > 0 || cached.sizeBytes > 0 || cached.incompleteBytes > 0;
      emit(options, { id: `hf:${reference.repo}`, catalog: entry ?? null, cache: inCache ? cachedJson(cached) : null }, () =>
        [
          entry ? formatEntry(entry) : `hf:${reference.repo}: not in the catalog (any Hugging Face ONNX repository can still be pulled)`,
          '',
          inCache ? formatCachedRepo(cached) : `not in the cache (${dir}); pull it with: headstart models pull hf:${reference.repo}`,
        ].join('\n'),
      );
    }),
  );

  models.addCommand(
    withModelsOptions(
      new Command('rm')
        .description("remove a repository's cache entry (all its revisions and blobs)")
        .argument('<id>', 'hf:<owner>/<name>')
        .option('--force', 'remove even if a download of it seems to be in progress'),
    ).action(async (id: string, options: ModelsOptions & { force?: boolean }) => {
      const reference = hubReference(id);
      if (id.includes('@')) throw usageError(`${id}: rm removes every revision of a repository; drop the "@${reference.revision}"`);
      const dir = hubCacheDir(options.hubCache);
      const cache = new RepoCache(dir, reference.repo);
      const busy = await liveLocks(cache.locksDir);
      if (busy.length && !options.force) {
        const who = busy.map((lock) => (lock.holder ? `pid ${lock.holder.pid} on ${lock.holder.host}` : 'another process')).join(', ');
        throw new HeadstartError('usage', `hf:${reference.repo} is being downloaded right now (${who}); try again later, or pass --force`);
      }
      const before = await scanRepo(cache);
      const removed = await removeRepoCache(cache);
      const freed = before.sizeBytes + before.incompleteBytes;
      emit(options, { id: `hf:${reference.repo}`, removed, freedBytes: removed ? freed : 0, path: cache.root }, () =>
        removed ? `removed hf:${reference.repo} from ${dir} (${formatBytes(freed)} freed)` : `hf:${reference.repo} is not in the cache (${dir}): nothing to remove`,
      );
    }),
  );

  return models;
}

function withModelsOptions(command: Command): Command {
  return command
    .option('--hub-cache <dir>', 'the Hugging Face cache (default HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)')
    .option('--json', 'print machine-readable JSON on stdout')
    .option('-q, --quiet', 'no progress output')
    .exitOverride();
}

/** Here the `hf:` prefix may be left out: `Xenova/resnet-18` means the Hub repository. */
function hubId(id: string): string {
  return /^(hf|builtin|tfjs):/.test(id) ? id : `hf:${id}`;
}

function hubReference(id: string): Extract<ModelReference, { kind: 'hf' }> {
  const parsed = parseModelReference(hubId(id));
  if (parsed.kind !== 'hf') {
    throw usageError(`${id}: only Hugging Face models (hf:<owner>/<name>) are pulled; ${parsed.kind === 'builtin' ? 'builtins ship with headstart' : 'local models need no pulling'}`);
  }
  return parsed;
}

function cachedJson(repo: CachedRepo) {
  return { id: `hf:${repo.repo}`, ...repo };
}

function formatCatalog(entries: readonly CatalogEntry[], cached: Map<string, CachedRepo>): string {
  const rows = entries.map((entry) => {
    const inCache = cached.get(entry.id.toLowerCase());
    return [
      entry.id,
      entry.modality,
      String(entry.features.dim),
      `${(entry.parameters / 1e6).toFixed(1)}M`,
      entry.downloadMB.fp32 ? `${entry.downloadMB.fp32} MB` : 'bundled',
      entry.licence.split(' ')[0]!,
      inCache ? formatBytes(inCache.sizeBytes) : entry.id.startsWith('builtin:') ? 'built in' : '-',
    ];
  });
  return ['recommended backbones (headstart models info <id> for details):', table([['id', 'modality', 'dim', 'params', 'fp32', 'licence', 'cached'], ...rows])].join('\n');
}

function formatCache(dir: string, repos: CachedRepo[]): string {
  if (!repos.length) return `cache ${dir}: empty`;
  const total = repos.reduce((sum, repo) => sum + repo.sizeBytes + repo.incompleteBytes, 0);
  return [`cache ${dir} (${formatBytes(total)}):`, ...repos.map((repo) => formatCachedRepo(repo, '  '))].join('\n');
}

function formatCachedRepo(repo: CachedRepo, indent = ''): string {
  const lines = [`${indent}hf:${repo.repo}  ${formatBytes(repo.sizeBytes)}${repo.incompleteBytes ? ` (+ ${formatBytes(repo.incompleteBytes)} of interrupted downloads)` : ''}`];
  for (const revision of repo.revisions) {
    const refs = revision.refs.length ? `${revision.refs.join(', ')} → ` : '';
    lines.push(`${indent}  ${refs}${revision.commit.slice(0, 10)}: ${revision.files.length} files, ${formatBytes(revision.sizeBytes)}`);
  }
  return lines.join('\n');
}

function formatEntry(entry: CatalogEntry): string {
  const input = entry.input;
  const inputText =
    input.modality === 'image'
      ? `${input.size}×${input.size} px, ${input.resize}; mean ${JSON.stringify(input.mean)}, std ${JSON.stringify(input.std)}`
      : input.modality === 'text'
        ? `up to ${input.maxTokens} tokens, ${input.tokenizer}`
        : `${input.sampleRate / 1000} kHz audio, ${input.melBins} mel bins, ${input.windowSeconds} s windows`;
  const sizes = Object.entries(entry.downloadMB).map(([dtype, mb]) => `${dtype} ${mb} MB`).join(', ');
  return [
    `${entry.id}  ${entry.name}`,
    `  task:       ${entry.task} (from ${entry.upstream})`,
    `  input:      ${inputText}`,
    `  features:   ${entry.features.dim}-d, ${entry.features.pooling} pooling: ${entry.features.source}`,
    `  parameters: ${(entry.parameters / 1e6).toFixed(1)} M`,
    `  licence:    ${entry.licence}`,
    `  download:   ${sizes || 'none (bundled)'}${entry.onnxComponent !== 'model' ? ` (onnx/${entry.onnxComponent}*.onnx)` : ''}`,
    `  note:       ${entry.note}`,
  ].join('\n');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => `  ${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')}`.trimEnd()).join('\n');
}
