"""Reference for tests/parity_classify_metrics.c: scikit-learn's
classification scores (zero_division=0, labels=range(C)), the
most-frequent DummyClassifier, and numpy.percentile (method "linear") of
latency samples, on random cases drawn with a fixed seed."""
import sys

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support)

from refio import write_ref

# (classes, samples, how predictions are drawn)
CLASSIFY_CASES = [
    (2, 1, "noisy"), (2, 10, "noisy"), (2, 500, "skewed"), (3, 7, "noisy"),
    (3, 300, "subset"), (5, 1000, "noisy"), (5, 64, "absent"), (10, 2000, "subset"),
    (10, 50, "absent"), (37, 5000, "noisy"), (37, 200, "skewed"), (4, 40, "neither"), (1, 5, "noisy"),
]
PERCENTILES = [0, 1, 10, 25, 33.3, 50, 66.7, 75, 90, 95, 99, 99.9, 100]
LATENCY_SIZES = [1, 2, 3, 5, 10, 99, 100, 1001, 4096]


def draw_labels(rng, C, n, kind):
    """True and predicted classes; some kinds leave classes out on purpose."""
    prior = rng.dirichlet(np.ones(C) * (0.3 if kind == "skewed" else 2.0))
    # "absent": the last two classes never true; "neither": the last never true nor guessed
    true_classes = np.arange(C - {"absent": 2, "neither": 1}.get(kind, 0))
    p = prior[true_classes] / prior[true_classes].sum()
    y = rng.choice(true_classes, size=n, p=p)
    guesses = np.arange(C - (kind == "neither"))
    if kind == "subset":  # classes outside the subset are never predicted
        guesses = rng.choice(C, size=max(1, C // 2), replace=False)
    wrong = rng.choice(guesses, size=n)
    right = rng.random(n) < 0.6
    y_pred = np.where(right & np.isin(y, guesses), y, wrong)
    return y, y_pred


def classify_case(out, i, rng, C, n, kind):
    y, y_pred = draw_labels(rng, C, n, kind)
    labels = list(range(C))
    key = f"case{i}/"
    out += [(key + "n_classes", C), (key + "true", y), (key + "pred", y_pred),
            (key + "confusion", confusion_matrix(y, y_pred, labels=labels)),
            (key + "accuracy", accuracy_score(y, y_pred))]
    p, r, f, s = precision_recall_fscore_support(y, y_pred, labels=labels, average=None,
                                                 zero_division=0)
    out += [(key + "precision", p), (key + "recall", r), (key + "f1", f),
            (key + "support", s)]
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, y_pred, labels=labels, average=avg,
                                                     zero_division=0)
        out.append((key + avg, [p, r, f]))
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((n, 1)), y)
    base = dummy.predict(np.zeros((n, 1)))
    out.append((key + "baseline", [base[0], accuracy_score(y, base),
                                   f1_score(y, base, labels=labels, average="macro",
                                            zero_division=0)]))


def latency_case(out, i, rng, n):
    # Lognormal times, a few rounded to the microsecond so ties occur.
    x = rng.lognormal(mean=-4.0, sigma=0.7, size=n)
    x[::3] = np.round(x[::3], 6)
    key = f"latency{i}/"
    out += [(key + "samples", x), (key + "q", PERCENTILES),
            (key + "percentile", np.percentile(x, PERCENTILES)),
            (key + "stats", [np.mean(x), np.min(x), np.max(x)])]


def main():
    rng = np.random.default_rng(20240611)
    out = [("n_cases", len(CLASSIFY_CASES)), ("n_latency", len(LATENCY_SIZES))]
    for i, (C, n, kind) in enumerate(CLASSIFY_CASES):
        classify_case(out, i, rng, C, n, kind)
    for i, n in enumerate(LATENCY_SIZES):
        latency_case(out, i, rng, n)
    # as float64 arrays: refio's torch.as_tensor would turn a list of Python
    # floats (the percentiles asked for) into float32
    write_ref(sys.argv[1], [(name, np.asarray(v, dtype=np.float64)) for name, v in out])


if __name__ == "__main__":
    main()
