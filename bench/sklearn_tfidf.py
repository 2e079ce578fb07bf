"""scikit-learn's TF-IDF + LogisticRegression on a split headstart hands over: the anchor of the TF-IDF rows
in bench/text.ts, measured in the same run. Not a runtime dependency; run with /work/pyenv/bin/python.

    python bench/sklearn_tfidf.py train.jsonl test.jsonl [max_features]

Each file holds one {"text": ..., "label": ...} per line. The features are the ones headstart's baseline uses:
word 1–2-grams and char_wb 2–4-grams, sublinear tf, smooth idf, each block L2-normalised on its own
(a FeatureUnion), then LogisticRegression with its defaults (L2, C = 1, lbfgs). Prints one JSON object.
"""
import json
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion


def read(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
    return texts, labels


def main():
    train_texts, train_labels = read(sys.argv[1])
    test_texts, test_labels = read(sys.argv[2])
    cap = int(sys.argv[3]) if len(sys.argv) > 3 else None
    started = time.perf_counter()
    cpu = time.process_time()
    # A cap applies per block here; headstart's --max-terms caps the union (documented in the bench row).
    union = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, max_features=cap)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=cap)),
    ])
    x_train = union.fit_transform(train_texts)
    model = LogisticRegression(max_iter=1000)
    model.fit(x_train, train_labels)
    predicted = model.predict(union.transform(test_texts))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    classes = sorted(set(train_labels))
    per_class = f1_score(test_labels, predicted, labels=classes, average=None)
    print(json.dumps({
        "terms": int(x_train.shape[1]),
        "accuracy": accuracy_score(test_labels, predicted),
        "macroF1": f1_score(test_labels, predicted, average="macro"),
        "f1": {str(c): float(v) for c, v in zip(classes, per_class)},
        "seconds": seconds,
        "cpuSeconds": cpu_seconds,
    }))


if __name__ == "__main__":
    main()
