import { dataError } from '../util/errors.js';

/**
 * Feature rows that are mostly zeros — TF-IDF over every n-gram of the training texts (SST-2: 109k
 * terms, ~170 non-zero per sentence) — stored as compressed sparse rows (CSR), the layout
 * scikit-learn's and scipy's linear models train on. A head or optimiser that knows the layout works
 * on the non-zeros only; anything else reads rows through `writeDenseRow`, so every head accepts
 * every feature matrix. Written here rather than taken from a library: npm has no maintained CSR
 * type for typed arrays, and the few operations needed are a dozen lines each.
 */
export interface SparseRows {
  readonly kind: 'csr';
  readonly rows: number;
  readonly dim: number;
  /** rows + 1 offsets: row r's entries are [indptr[r], indptr[r + 1]) of indices/values. */
  readonly indptr: Int32Array;
  /** Column of each entry, increasing within a row, each at most once. */
  readonly indices: Int32Array;
  readonly values: Float32Array;
}

/** One sparse row: columns (increasing, unique) and their values. */
export interface SparseRow {
  indices: Int32Array;
  values: Float32Array;
}

/** What backbones return and heads take: dense rows×dim row-major, or sparse rows. */
export type FeatureMatrix = Float32Array | SparseRows;

export function isSparse(matrix: FeatureMatrix): matrix is SparseRows {
  return !(matrix instanceof Float32Array);
}

/** A matrix that must be dense (activations, pixels): the backbones producing it never return sparse rows. */
export function asDense(matrix: FeatureMatrix): Float32Array {
  if (isSparse(matrix)) throw new Error('expected dense feature rows, got sparse ones');
  return matrix;
}

/** Stacks sparse rows into one matrix. */
export function sparseRows(rows: SparseRow[], dim: number): SparseRows {
  const indptr = new Int32Array(rows.length + 1);
  for (let r = 0; r < rows.length; r++) indptr[r + 1] = indptr[r]! + rows[r]!.indices.length;
  const indices = new Int32Array(indptr[rows.length]!);
  const values = new Float32Array(indptr[rows.length]!);
  rows.forEach((row, r) => {
    indices.set(row.indices, indptr[r]);
    values.set(row.values, indptr[r]);
  });
  return { kind: 'csr', rows: rows.length, dim, indptr, indices, values };
}

/** Row r of a sparse matrix (views, not copies). */
export function sparseRow(matrix: SparseRows, r: number): SparseRow {
  const start = matrix.indptr[r]!;
  const end = matrix.indptr[r + 1]!;
  return { indices: matrix.indices.subarray(start, end), values: matrix.values.subarray(start, end) };
}

/** Number of `dim`-wide rows. */
export function rowCountOf(matrix: FeatureMatrix, dim: number): number {
  if (isSparse(matrix)) {
    if (matrix.dim !== dim) throw dataError(`sparse features have ${matrix.dim} columns, expected ${dim}`);
    return matrix.rows;
  }
  if (matrix.length % dim !== 0) {
    throw dataError(`feature array of length ${matrix.length} is not a whole number of ${dim}-dimensional rows`);
  }
  return matrix.length / dim;
}

/** Row `row` as dense float64 at out[offset..offset+dim). */
export function writeDenseRow(matrix: FeatureMatrix, row: number, dim: number, out: Float64Array, offset: number): void {
  if (isSparse(matrix)) {
    out.fill(0, offset, offset + dim);
    const end = matrix.indptr[row + 1]!;
    for (let e = matrix.indptr[row]!; e < end; e++) out[offset + matrix.indices[e]!] = matrix.values[e]!;
    return;
  }
  const base = row * dim;
  for (let j = 0; j < dim; j++) out[offset + j] = matrix[base + j]!;
}

/** The rows at `rows`, in that order, in the same layout. */
export function selectRows(matrix: FeatureMatrix, dim: number, rows: ArrayLike<number>): FeatureMatrix {
  if (isSparse(matrix)) return sparseRows(Array.from(rows, (r) => sparseRow(matrix, r)), dim);
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) out.set(matrix.subarray(rows[i]! * dim, (rows[i]! + 1) * dim), i * dim);
  return out;
}

/** Parts stacked one after another; all sparse or all dense. */
export function concatRows(parts: FeatureMatrix[], dim: number): FeatureMatrix {
  if (parts.length > 0 && parts.every(isSparse)) {
    return sparseRows(parts.flatMap((part) => Array.from({ length: part.rows }, (_, r) => sparseRow(part, r))), dim);
  }
  const dense = parts.map((part) => (isSparse(part) ? toDense(part) : part));
  const out = new Float32Array(dense.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of dense) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function toDense(matrix: SparseRows): Float32Array {
  const out = new Float32Array(matrix.rows * matrix.dim);
  for (let r = 0; r < matrix.rows; r++) {
    const end = matrix.indptr[r + 1]!;
    for (let e = matrix.indptr[r]!; e < end; e++) out[r * matrix.dim + matrix.indices[e]!] = matrix.values[e]!;
  }
  return out;
}

/** The first problem with a sparse matrix's structure or values, or undefined; `name` says which set. */
export function sparseProblem(matrix: SparseRows): string | undefined {
  const { rows, dim, indptr, indices, values } = matrix;
  if (indptr.length !== rows + 1 || indptr[0] !== 0 || indptr[rows] !== indices.length || values.length !== indices.length) {
    return `sparse rows are malformed (${rows} rows, ${indptr.length} offsets, ${indices.length} columns, ${values.length} values)`;
  }
  for (let r = 0; r < rows; r++) {
    let previous = -1;
    for (let e = indptr[r]!; e < indptr[r + 1]!; e++) {
      const column = indices[e]!;
      if (!(column > previous && column < dim)) return `row ${r} has column ${column} out of order or outside 0..${dim - 1}`;
      if (!Number.isFinite(values[e]!)) return `row ${r} has a non-finite feature (${values[e]}) at dimension ${column}`;
      previous = column;
    }
  }
  return undefined;
}
