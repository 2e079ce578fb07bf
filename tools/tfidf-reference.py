#!/usr/bin/python3
"""Reference numbers for headstart's TF-IDF baseline, computed with scikit-learn.

A small fixed problem: the first 1,500 messages of the SMS spam collection train, the next 500 test.
Features: word 1–2-grams + char_wb 2–4-grams, sublinear tf, smooth idf, each block L2-normalised
(a FeatureUnion of two TfidfVectorizers); model: LogisticRegression() (L2, C = 1, lbfgs).
test/tfidf-reference.test.ts compares src/backbones/text-tfidf.ts and the linear head against the
committed output, so CI needs no Python. Regenerate with:

    /work/pyenv/bin/python tools/tfidf-reference.py > test/fixtures/tfidf/sklearn-sms.json
"""
import json
import sys

import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion

SOURCE = "../shared/data/text/sms-spam/SMSSpamCollection"
TRAIN, TEST = 1500, 500

rows = []
with open(sys.argv[1] if len(sys.argv) > 1 else SOURCE, encoding="utf-8") as f:
    for line in f:
        label, text = line.rstrip("\n").split("\t", 1)
        rows.append((text, label))
train, test = rows[:TRAIN], rows[TRAIN:TRAIN + TEST]
word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
union = FeatureUnion([("word", word), ("char", char)])
x_train = union.fit_transform([t for t, _ in train])
model = LogisticRegression().fit(x_train, [l for _, l in train])
x_test = union.transform([t for t, _ in test])
predicted = model.predict(x_test)
spam = list(model.classes_).index("spam")
terms = sorted(["w:" + t for t in word.vocabulary_] + ["c:" + t for t in char.vocabulary_])
idf = {"w:" + t: word.idf_[i] for t, i in word.vocabulary_.items()}
idf.update({"c:" + t: char.idf_[i] for t, i in char.vocabulary_.items()})
names = {i: "w:" + t for t, i in word.vocabulary_.items()}
names.update({len(word.vocabulary_) + i: "c:" + t for t, i in char.vocabulary_.items()})


def row(r):
    coo = x_test[r].tocoo()
    return {names[j]: round(float(v), 7) for j, v in zip(coo.col, coo.data)}


print(json.dumps({
    "sklearn": sklearn.__version__,
    "train": TRAIN,
    "test": TEST,
    "terms": len(terms),
    # Every 97th term and its idf, and three full test rows.
    "idf": {t: idf[t] for t in terms[::97]},
    "rows": {str(r): row(r) for r in (0, 1, 7)},
    "accuracy": accuracy_score([l for _, l in test], predicted),
    "spamF1": f1_score([l for _, l in test], predicted, pos_label="spam"),
    "spamProbability": [round(float(p), 6) for p in model.predict_proba(x_test)[:, spam]],
}, indent=0))
