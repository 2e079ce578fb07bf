#!/usr/bin/python3
"""Reference numbers for headstart's metrics, computed with scikit-learn (and numpy for ECE).

Prints JSON: a few seeded cases (true labels, float32 probabilities) and what scikit-learn says about
them. test/evaluate-metrics.test.ts compares src/evaluate/metrics.ts against the committed output,
so CI needs no Python. Regenerate with:

    apt-get install -y python3-sklearn
    /usr/bin/python3 tools/metrics-reference.py > test/fixtures/metrics/sklearn-reference.json
"""
import json
import sys

import numpy as np
import sklearn
from sklearn import metrics

ECE_BINS = 10


def make_case(name, seed, n, k, signal, weights=None, never_predicted=None, absent=None, quantise=None):
    rng = np.random.default_rng(seed)
    classes = [c for c in range(k) if c != absent]
    p = None if weights is None else np.array(weights, dtype=float) / np.sum(weights)
    y = rng.choice(classes, size=n, p=p)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    if never_predicted is not None:
        logits[:, never_predicted] -= 10.0
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    if quantise is not None:
        # Binary scores on a coarse grid: many exact ties, for ROC-AUC and average precision.
        p1 = np.round(prob[:, 1] * quantise) / quantise
        prob = np.stack([1 - p1, p1], axis=1)
    prob = prob.astype(np.float32)
    return {"name": name, "labels": [f"class{c}" for c in range(k)], "trueLabels": y.tolist(), "probabilities": prob.tolist()}


def reference(case):
    y = np.array(case["trueLabels"])
    prob = np.array(case["probabilities"], dtype=np.float32).astype(np.float64)
    k = len(case["labels"])
    labels = list(range(k))
    pred = np.argmax(prob, axis=1)  # first maximum: ties go to the lower class index, as in headstart
    p, r, f, s = metrics.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    averaged = {}
    for average in ("micro", "macro", "weighted"):
        ap, ar, af, _ = metrics.precision_recall_fscore_support(y, pred, labels=labels, average=average, zero_division=0)
        averaged[average] = {"precision": ap, "recall": ar, "f1": af}

    roc, pr = [], []
    for c in labels:
        positives = y == c
        defined = 0 < positives.sum() < len(y)
        roc.append(metrics.roc_auc_score(positives, prob[:, c]) if defined else None)
        pr.append(metrics.average_precision_score(positives, prob[:, c]) if positives.any() else None)
    support = np.bincount(y, minlength=k)

    def averages(values):
        idx = [c for c in labels if values[c] is not None]
        return {
            "perClass": values,
            "macro": float(np.mean([values[c] for c in idx])),
            "weighted": float(np.sum([values[c] * support[c] for c in idx]) / np.sum(support[idx])),
        }

    roc_auc = averages(roc)
    if all(v is not None for v in roc) and k > 2:
        # When every class is present, sklearn's own one-vs-rest averaging must agree.
        assert abs(roc_auc["macro"] - metrics.roc_auc_score(y, prob, multi_class="ovr", average="macro", labels=labels)) < 1e-12
        assert abs(roc_auc["weighted"] - metrics.roc_auc_score(y, prob, multi_class="ovr", average="weighted", labels=labels)) < 1e-12

    top_k = {}
    for kk in range(2, k):
        top_k[str(kk)] = metrics.top_k_accuracy_score(y, prob, k=kk, labels=labels)

    # ECE with equal-width bins (lower, upper], as in Guo et al. (2017); numpy, not sklearn.
    confidence = prob.max(axis=1)
    correct = (pred == y).astype(float)
    ece = 0.0
    edges = np.linspace(0, 1, ECE_BINS + 1)
    for lower, upper in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lower) & (confidence <= upper)
        if lower == 0:
            in_bin |= confidence == 0
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())

    return {
        "accuracy": metrics.accuracy_score(y, pred),
        "topK": top_k,
        "perClass": {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": s.tolist()},
        "micro": averaged["micro"],
        "macro": averaged["macro"],
        "weighted": averaged["weighted"],
        "balancedAccuracy": metrics.balanced_accuracy_score(y, pred),
        "cohenKappa": metrics.cohen_kappa_score(y, pred),
        "matthews": metrics.matthews_corrcoef(y, pred),
        "rocAuc": roc_auc,
        "prAuc": averages(pr),
        "logLoss": metrics.log_loss(y, prob, labels=labels),
        "confusion": metrics.confusion_matrix(y, pred, labels=labels).tolist(),
        "confusionNormalized": np.nan_to_num(metrics.confusion_matrix(y, pred, labels=labels, normalize="true")).tolist(),
        "ece": {"bins": ECE_BINS, "value": ece},
    }


def main():
    import warnings

    warnings.simplefilter("ignore")  # undefined per-class values are expected in some cases
    cases = [
        make_case("binary, 40 examples", seed=1, n=40, k=2, signal=1.5),
        make_case("binary with tied scores, 30 examples", seed=2, n=30, k=2, signal=1.0, quantise=5),
        make_case("3 classes, imbalanced 3:2:1, 60 examples", seed=3, n=60, k=3, signal=1.2, weights=[3, 2, 1]),
        make_case("5 classes, one never predicted, 200 examples", seed=4, n=200, k=5, signal=1.8, never_predicted=4),
        make_case("4 classes, one absent from the true labels, 50 examples", seed=5, n=50, k=4, signal=1.0, absent=2),
    ]
    out = {
        "generator": "tools/metrics-reference.py",
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "cases": [{**case, "expected": reference(case)} for case in cases],
    }
    json.dump(out, sys.stdout, indent=1, default=float)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
