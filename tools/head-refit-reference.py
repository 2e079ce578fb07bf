"""Reference for src/export/head-refit.ts: scikit-learn's Ridge fits the change to a linear map.

The refit is ridge regression of the residuals (targets minus the trained map's outputs) on the
inputs, with an intercept, alpha = 0.3 x the mean squared norm of the centred inputs. Writes
test/fixtures/export/head-refit.json: inputs, targets, the trained map, the refitted map, and the
leave-one-out error of the refit (n refits) beside the trained map's error.

    /work/pyenv/bin/python tools/head-refit-reference.py
"""
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge

rng = np.random.default_rng(7)
n, cols, rows = 12, 5, 3
x = rng.normal(size=(n, cols)).astype(np.float32) * np.array([1, 0.1, 3, 1, 0.5], dtype=np.float32) + 0.7
weight = rng.normal(size=(rows, cols)).astype(np.float32)
bias = rng.normal(size=rows).astype(np.float32)
targets = (x @ rng.normal(size=(cols, rows)) + rng.normal(size=rows)).astype(np.float32)
xd = x.astype(np.float64)
residuals = targets - (xd @ weight.T.astype(np.float64) + bias)
centred = xd - xd.mean(0)
alpha = 0.3 * (centred**2).sum() / n
ridge = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(xd, residuals)
# Leave-one-out by brute force (n refits, the same alpha), and the trained map's own error.
loo = []
for i in range(n):
    keep = np.arange(n) != i
    fit = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(xd[keep], residuals[keep])
    loo.append(residuals[i] - fit.predict(xd[i : i + 1])[0])
out = {
    "looError": float((np.array(loo) ** 2).mean()),
    "error": float((residuals**2).mean()),
    "source": "tools/head-refit-reference.py (scikit-learn Ridge)",
    "rows": rows, "cols": cols,
    "inputs": x.tolist(), "targets": targets.tolist(),
    "weight": weight.ravel().tolist(), "bias": bias.tolist(),
    "refittedWeight": (weight + ridge.coef_).ravel().tolist(),
    "refittedBias": (bias + ridge.intercept_).tolist(),
}
path = Path(__file__).resolve().parent.parent / "test/fixtures/export/head-refit.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print("wrote", path)
