/** The studio's REST API, as the page uses it (the same routes the README documents). */

export type Task = 'image' | 'text' | 'audio';

export interface ClassSummary {
  name: string;
  examples: number;
}

export interface ProjectSummary {
  id: string;
  name: string;
  task: Task;
  createdAt: string;
  classes: ClassSummary[];
}

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Metrics {
  n: number;
  accuracy: number;
  perClass: ClassMetrics[];
  macro: { precision: number; recall: number; f1: number };
  confusion: number[][];
  logLoss: number;
  labels: string[];
  calibration?: { ece: number; temperature: number; fittedOn?: string; beforeScaling?: { ece: number } };
  intervals?: { level: number; accuracy: { low: number; high: number } };
}

export interface EpochDetail {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface TrainStatus {
  state: 'idle' | 'running' | 'done' | 'failed';
  settings?: { backbone: string; head: string; augment: number; unfreeze?: number | 'all' };
  startedAt?: string;
  finishedAt?: string;
  metrics?: { validation?: Metrics; test?: Metrics };
  error?: string;
  cancelled?: boolean;
  history?: { stage: string; epochs: EpochDetail[] }[];
}

export interface BackboneChoice {
  id: string;
  description: string;
  source: string;
  default?: boolean;
}

export interface ProjectDetail extends ProjectSummary {
  training: TrainStatus;
  model: { labels: string[]; backbone: string; head: string; createdAt: string; validation: Metrics | null } | null;
  backbones: BackboneChoice[];
}

export interface Example {
  id: string;
  text?: string;
}

export interface Prediction {
  label: string;
  probability: number;
}

export type TrainEvent =
  | { type: 'state'; status: TrainStatus }
  | { type: 'progress'; label: string; done: number; total: number; unit: string }
  | { type: 'epoch'; stage: string; detail: EpochDetail }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, url: string, body?: BodyInit | object, type?: string): Promise<T> {
  const init: RequestInit = { method, headers: {} };
  if (body instanceof FormData || body instanceof Blob || body instanceof ArrayBuffer) {
    init.body = body;
    if (type) (init.headers as Record<string, string>)['content-type'] = type;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const response = await fetch(url, init);
  if (response.status === 204) return undefined as T;
  const payload = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = payload?.error ?? {};
    throw new ApiError(response.status, error.code ?? 'error', error.message ?? `${method} ${url} failed (${response.status})`);
  }
  return payload as T;
}

const project = (id: string) => `/api/projects/${encodeURIComponent(id)}`;
const klass = (id: string, name: string) => `${project(id)}/classes/${encodeURIComponent(name)}`;

export const api = {
  projects: () => call<{ projects: ProjectSummary[] }>('GET', '/api/projects'),
  createProject: (name: string, task: Task) => call<{ id: string }>('POST', '/api/projects', { name, task }),
  project: (id: string) => call<ProjectDetail>('GET', project(id)),
  addClass: (id: string, name: string) => call<{ name: string }>('POST', `${project(id)}/classes`, { name }),
  renameClass: (id: string, from: string, to: string) => call<{ name: string }>('PATCH', klass(id, from), { name: to }),
  deleteClass: (id: string, name: string) => call<void>('DELETE', klass(id, name)),
  examples: (id: string, name: string) => call<{ examples: Example[] }>('GET', `${klass(id, name)}/examples`),
  exampleUrl: (id: string, name: string, example: string) => `${klass(id, name)}/examples/${encodeURIComponent(example)}`,
  uploadFiles: (id: string, name: string, files: { blob: Blob; name: string }[]) => {
    const form = new FormData();
    for (const file of files) form.append('files', file.blob, file.name);
    return call<{ added: string[]; duplicates: string[] }>('POST', `${klass(id, name)}/examples`, form);
  },
  addTexts: (id: string, name: string, texts: string[]) => call<{ added: number; duplicates: number }>('POST', `${klass(id, name)}/examples`, { texts }),
  moveExample: (id: string, name: string, example: string, to: string) => call<{ id: string }>('POST', `${klass(id, name)}/examples/${encodeURIComponent(example)}/move`, { to }),
  deleteExample: (id: string, name: string, example: string) => call<void>('DELETE', `${klass(id, name)}/examples/${encodeURIComponent(example)}`),
  importTexts: (id: string, file: File) => {
    const form = new FormData();
    form.append('files', file, file.name);
    return call<{ added: number; classes: string[] }>('POST', `${project(id)}/import`, form);
  },
  train: (id: string, settings: object) => call<TrainStatus>('POST', `${project(id)}/train`, settings),
  cancel: (id: string) => call<TrainStatus>('POST', `${project(id)}/train/cancel`, {}),
  trainEvents: (id: string) => new EventSource(`${project(id)}/train/events`),
  predictBytes: (id: string, blob: Blob) => call<Prediction[]>('POST', `${project(id)}/predict`, blob, blob.type || 'application/octet-stream'),
  predictText: (id: string, text: string) => call<Prediction[]>('POST', `${project(id)}/predict`, { text }),
  exportInfo: (id: string) => call<{ bytes: number; metadata: Record<string, unknown> & { input: Record<string, unknown>; output: Record<string, unknown> } }>('GET', `${project(id)}/export`),
  reportUrl: (id: string) => `${project(id)}/report`,
  onnxUrl: (id: string) => `${project(id)}/export.onnx`,
  zipUrl: (id: string) => `${project(id)}/model.zip`,
};
