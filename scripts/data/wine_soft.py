#!/usr/bin/python3
"""Writes data/wine_soft.csv: a distribution-prediction table made from the
wine table that Debian's python3-sklearn ships (178 wines, 13 chemical
measurements, 3 cultivars).

The target of each wine is the cultivar mix of its neighbourhood: the wine
itself and its K = 10 nearest other wines (Euclidean distance on
standardised features), as a distribution p_class_0..2 that sums to 1. The
weight of a row is how sure that estimate is: 1 + the share of neighbours of
the wine's own cultivar. So the table has soft labels and row weights, as
seed 002's distribution-prediction data had (there: 7 bins of Wordle tries
per word, weighted by the number of players).

Usage: scripts/data/wine_soft.py [OUT]   (default data/wine_soft.csv)
Only numpy is needed; the output is deterministic."""
import sys

import numpy as np

SRC = "/usr/lib/python3/dist-packages/sklearn/datasets/data/wine_data.csv"
K = 10


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "data/wine_soft.csv"
    with open(SRC) as f:
        head = f.readline().strip().split(",")
        rows = [list(map(float, line.split(","))) for line in f if line.strip()]
    data = np.array(rows)
    x, y = data[:, :-1], data[:, -1].astype(int)
    classes = head[2:]
    z = (x - x.mean(0)) / x.std(0)
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    names = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
             "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
             "od280_od315", "proline"]
    assert len(names) == x.shape[1]
    with open(out, "w") as f:
        f.write(",".join(names + ["p_" + c for c in classes] + ["weight"]) + "\n")
        for i in range(len(x)):
            nb = np.argsort(d[i], kind="stable")[:K]
            counts = np.bincount(np.concatenate([[y[i]], y[nb]]), minlength=len(classes))
            p = counts / counts.sum()
            w = 1 + (y[nb] == y[i]).mean()
            cells = ["%g" % v for v in x[i]] + ["%.6f" % v for v in p] + ["%.3f" % w]
            f.write(",".join(cells) + "\n")


if __name__ == "__main__":
    main()
