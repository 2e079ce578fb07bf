/**
 * The two dense products that heads and their training spend their time in, register-blocked
 * 4 rows × 4 outputs: sixteen independent accumulators hide floating-point latency and each loaded
 * value is used four times, which makes them 2–3× faster than naive loops in V8.
 * Everything is float64. Rows of the input `a` are addressed through `aRows` (the offset of each
 * row), so a mini-batch can be read in place from the full standardised matrix without a copy.
 * Summation order depends only on a row's position within its group of four, so results are
 * reproducible run to run.
 */

/** Offsets 0, stride, 2·stride, …: the `aRows` of a contiguous row-major matrix. */
export function contiguousRows(count: number, stride: number): Int32Array {
  const rows = new Int32Array(count);
  for (let i = 0; i < count; i++) rows[i] = i * stride;
  return rows;
}

/**
 * out[i·outs + o] = Σ_j a[aRows[i] + j] · w[wOffset + o·d + j]   for i < count, o < outs
 * (out = a·wᵀ with w an outs×d row-major block).
 */
export function multiplyTransposed(
  a: Float64Array,
  aRows: Int32Array,
  count: number,
  d: number,
  w: Float64Array,
  wOffset: number,
  outs: number,
  out: Float64Array,
): void {
  let i = 0;
  for (; i + 3 < count; i += 4) {
    const a0 = aRows[i];
    const a1 = aRows[i + 1];
    const a2 = aRows[i + 2];
    const a3 = aRows[i + 3];
    const r0 = i * outs;
    let o = 0;
    for (; o + 3 < outs; o += 4) {
      const w0 = wOffset + o * d;
      const w1 = w0 + d;
      const w2 = w1 + d;
      const w3 = w2 + d;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0;
      let s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0;
      let s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let j = 0; j < d; j++) {
        const x0 = w[w0 + j];
        const x1 = w[w1 + j];
        const x2 = w[w2 + j];
        const x3 = w[w3 + j];
        let v = a[a0 + j];
        s00 += x0 * v; s01 += x1 * v; s02 += x2 * v; s03 += x3 * v;
        v = a[a1 + j];
        s10 += x0 * v; s11 += x1 * v; s12 += x2 * v; s13 += x3 * v;
        v = a[a2 + j];
        s20 += x0 * v; s21 += x1 * v; s22 += x2 * v; s23 += x3 * v;
        v = a[a3 + j];
        s30 += x0 * v; s31 += x1 * v; s32 += x2 * v; s33 += x3 * v;
      }
      let r = r0 + o;
      out[r] = s00; out[r + 1] = s01; out[r + 2] = s02; out[r + 3] = s03;
      r += outs;
      out[r] = s10; out[r + 1] = s11; out[r + 2] = s12; out[r + 3] = s13;
      r += outs;
      out[r] = s20; out[r + 1] = s21; out[r + 2] = s22; out[r + 3] = s23;
      r += outs;
      out[r] = s30; out[r + 1] = s31; out[r + 2] = s32; out[r + 3] = s33;
    }
    for (; o + 1 < outs; o += 2) {
      const w0 = wOffset + o * d;
      const w1 = w0 + d;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
      for (let j = 0; j < d; j++) {
        const x0 = w[w0 + j];
        const x1 = w[w1 + j];
        let v = a[a0 + j];
        s00 += x0 * v; s01 += x1 * v;
        v = a[a1 + j];
        s10 += x0 * v; s11 += x1 * v;
        v = a[a2 + j];
        s20 += x0 * v; s21 += x1 * v;
        v = a[a3 + j];
        s30 += x0 * v; s31 += x1 * v;
      }
      let r = r0 + o;
      out[r] = s00; out[r + 1] = s01;
      r += outs;
      out[r] = s10; out[r + 1] = s11;
      r += outs;
      out[r] = s20; out[r + 1] = s21;
      r += outs;
      out[r] = s30; out[r + 1] = s31;
    }
    if (o < outs) {
      const w0 = wOffset + o * d;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j < d; j++) {
        const x = w[w0 + j];
        s0 += x * a[a0 + j];
        s1 += x * a[a1 + j];
        s2 += x * a[a2 + j];
        s3 += x * a[a3 + j];
      }
      out[r0 + o] = s0;
      out[r0 + outs + o] = s1;
      out[r0 + 2 * outs + o] = s2;
      out[r0 + 3 * outs + o] = s3;
    }
  }
  for (; i < count; i++) {
    const a0 = aRows[i];
    for (let o = 0; o < outs; o++) {
      const w0 = wOffset + o * d;
      let s0 = 0, s1 = 0;
      let j = 0;
      for (; j + 1 < d; j += 2) {
        s0 += w[w0 + j] * a[a0 + j];
        s1 += w[w0 + j + 1] * a[a0 + j + 1];
      }
      if (j < d) s0 += w[w0 + j] * a[a0 + j];
      out[i * outs + o] = s0 + s1;
    }
  }
}

/**
 * g[gOffset + o·d + j] += Σ_i delta[i·outs + o] · a[aRows[i] + j]   for i < count
 * (the weight gradient of a layer out = a·wᵀ). Blocks whose deltas are all zero (inactive ReLU
 * units, dropped units, zero-weight rows) are skipped. The zero test is one comparison of a sum:
 * a chain of `=== 0` tests gets integer type feedback from zeros and deoptimises on real data.
 */
export function accumulateTransposedProduct(
  delta: Float64Array,
  count: number,
  outs: number,
  a: Float64Array,
  aRows: Int32Array,
  d: number,
  g: Float64Array,
  gOffset: number,
): void {
  let i = 0;
  for (; i + 3 < count; i += 4) {
    const a0 = aRows[i];
    const a1 = aRows[i + 1];
    const a2 = aRows[i + 2];
    const a3 = aRows[i + 3];
    const r0 = i * outs;
    const r1 = r0 + outs;
    const r2 = r1 + outs;
    const r3 = r2 + outs;
    let o = 0;
    for (; o + 3 < outs; o += 4) {
      const p0 = delta[r0 + o], p1 = delta[r1 + o], p2 = delta[r2 + o], p3 = delta[r3 + o];
      const q0 = delta[r0 + o + 1], q1 = delta[r1 + o + 1], q2 = delta[r2 + o + 1], q3 = delta[r3 + o + 1];
      const u0 = delta[r0 + o + 2], u1 = delta[r1 + o + 2], u2 = delta[r2 + o + 2], u3 = delta[r3 + o + 2];
      const z0 = delta[r0 + o + 3], z1 = delta[r1 + o + 3], z2 = delta[r2 + o + 3], z3 = delta[r3 + o + 3];
      const magnitude =
        Math.abs(p0) + Math.abs(p1) + Math.abs(p2) + Math.abs(p3) + Math.abs(q0) + Math.abs(q1) + Math.abs(q2) +
        Math.abs(q3) + Math.abs(u0) + Math.abs(u1) + Math.abs(u2) + Math.abs(u3) + Math.abs(z0) + Math.abs(z1) +
        Math.abs(z2) + Math.abs(z3);
      if (magnitude === 0) continue;
      const g0 = gOffset + o * d;
      const g1 = g0 + d;
      const g2 = g1 + d;
      const g3 = g2 + d;
      for (let j = 0; j < d; j++) {
        const v0 = a[a0 + j];
        const v1 = a[a1 + j];
        const v2 = a[a2 + j];
        const v3 = a[a3 + j];
        g[g0 + j] += p0 * v0 + p1 * v1 + (p2 * v2 + p3 * v3);
        g[g1 + j] += q0 * v0 + q1 * v1 + (q2 * v2 + q3 * v3);
        g[g2 + j] += u0 * v0 + u1 * v1 + (u2 * v2 + u3 * v3);
        g[g3 + j] += z0 * v0 + z1 * v1 + (z2 * v2 + z3 * v3);
      }
    }
    for (; o + 1 < outs; o += 2) {
      const p0 = delta[r0 + o], p1 = delta[r1 + o], p2 = delta[r2 + o], p3 = delta[r3 + o];
      const q0 = delta[r0 + o + 1], q1 = delta[r1 + o + 1], q2 = delta[r2 + o + 1], q3 = delta[r3 + o + 1];
      const magnitude =
        Math.abs(p0) + Math.abs(p1) + Math.abs(p2) + Math.abs(p3) + Math.abs(q0) + Math.abs(q1) + Math.abs(q2) + Math.abs(q3);
      if (magnitude === 0) continue;
      const g0 = gOffset + o * d;
      const g1 = g0 + d;
      for (let j = 0; j < d; j++) {
        const v0 = a[a0 + j];
        const v1 = a[a1 + j];
        const v2 = a[a2 + j];
        const v3 = a[a3 + j];
        g[g0 + j] += p0 * v0 + p1 * v1 + (p2 * v2 + p3 * v3);
        g[g1 + j] += q0 * v0 + q1 * v1 + (q2 * v2 + q3 * v3);
      }
    }
    if (o < outs) {
      const p0 = delta[r0 + o], p1 = delta[r1 + o], p2 = delta[r2 + o], p3 = delta[r3 + o];
      if (Math.abs(p0) + Math.abs(p1) + Math.abs(p2) + Math.abs(p3) === 0) continue;
      const g0 = gOffset + o * d;
      for (let j = 0; j < d; j++) g[g0 + j] += p0 * a[a0 + j] + p1 * a[a1 + j] + (p2 * a[a2 + j] + p3 * a[a3 + j]);
    }
  }
  for (; i < count; i++) {
    const a0 = aRows[i];
    for (let o = 0; o < outs; o++) {
      const p = delta[i * outs + o];
      if (p === 0) continue;
      const g0 = gOffset + o * d;
      for (let j = 0; j < d; j++) g[g0 + j] += p * a[a0 + j];
    }
  }
}

/**
 * Runs every branch of both kernels once on tiny inputs. V8 compiles a hot function with only the
 * branches it has seen; the first time a training run reached an unseen one (a remainder row, an
 * odd class count) the optimised code was thrown away and rebuilt, costing a cold process
 * roughly half of a short training run.
 */
function warmUp(): void {
  const d = 3;
  const count = 7;
  const outs = 7;
  // Fractional values: with small integers V8 would record integer arithmetic and deoptimise on real data.
  const a = Float64Array.from({ length: count * d }, (_, i) => 0.37 * (i + 1));
  const w = Float64Array.from({ length: outs * d }, (_, i) => -0.21 * (i + 1));
  const out = new Float64Array(count * outs);
  const delta = Float64Array.from({ length: count * outs }, (_, i) => (i === 0 ? 0 : 0.13 * i));
  const aRows = contiguousRows(count, d);
  for (let repeat = 0; repeat < 2; repeat++) {
    multiplyTransposed(a, aRows, count, d, w, 0, outs, out);
    accumulateTransposedProduct(delta, count, outs, a, aRows, d, w, 0);
    delta.fill(0);
    accumulateTransposedProduct(delta, count, outs, a, aRows, d, w, 0);
  }
}
warmUp();
