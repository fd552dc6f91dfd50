"""scikit-learn on the codes the bench fits: QuadraticDiscriminantAnalysis (one per attribute group, hard labels)
and GaussianMixture (full covariance, one component per class), timed, with held-out ROC AUC per class.

Called by `subspace-bench` with the Python of the libtorch venv (the Makefile's bench target installs
scikit-learn there). Reads z.npy (N x D), labels.npy (N x K) and groups.json (class counts per group) from DIR;
the last `holdout` fraction is held out, as in SingleGaussFit. Prints one JSON object.
"""

import argparse
import json
import os
import time

import numpy as np
import sklearn
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--gmm", action="store_true", help="also fit GaussianMixture (full covariance)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="QDA fits timed (the median is reported)")
    args = ap.parse_args()
    out = {"cpus_inherited": len(os.sched_getaffinity(0))}
    z = np.load(os.path.join(args.dir, "z.npy")).astype(np.float64)
    labels = np.load(os.path.join(args.dir, "labels.npy")).astype(np.float64)
    with open(os.path.join(args.dir, "groups.json")) as f:
        groups = json.load(f)
    n = len(z)
    n_fit = n - int(round(n * args.holdout))
    zf, zv = z[:n_fit], z[n_fit:]
    out.update({"codes": n, "fit_codes": n_fit, "dim": z.shape[1], "sklearn_version": sklearn.__version__})

    # QDA: one classifier per attribute group on the hard labels (argmax within the group), as the AUC judges.
    start, parts = 0, []
    for c in groups:
        parts.append((start, c))
        start += c
    # The median of `repeats` fits: one fit takes a fraction of a second, where a shared machine's noise is large.
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        models = []
        for s, c in parts:
            y = labels[:n_fit, s:s + c].argmax(1)
            models.append(QuadraticDiscriminantAnalysis().fit(zf, y))
        times.append(time.perf_counter() - t)
    out["qda_s"] = sorted(times)[len(times) // 2]
    out["qda_runs_s"] = times
    aucs = []
    for (s, c), m in zip(parts, models):
        hard = labels[n_fit:, s:s + c].argmax(1)
        proba = np.zeros((len(zv), c))
        proba[:, m.classes_] = m.predict_proba(zv)
        for j in range(c):
            pos = hard == j
            aucs.append(float(roc_auc_score(pos, proba[:, j])) if 0 < pos.sum() < len(pos) else None)
    out["qda_auc"] = aucs

    if args.gmm:
        k = labels.shape[1]
        t = time.perf_counter()
        gm = GaussianMixture(n_components=k, covariance_type="full", random_state=args.seed).fit(zf)
        out["gmm_s"] = time.perf_counter() - t
        out["gmm_iterations"] = int(gm.n_iter_)
        out["gmm_converged"] = bool(gm.converged_)
        # Unsupervised: its components hold no class. For the record, each class's AUC when scored by the
        # posterior of the component whose soft assignment correlates best with that class's labels.
        resp = gm.predict_proba(zf)
        post = gm.predict_proba(zv)
        best = []
        for (s, c) in parts:
            hard = labels[n_fit:, s:s + c].argmax(1)
            for j in range(c):
                corr = [np.corrcoef(resp[:, i], labels[:n_fit, s + j])[0, 1] for i in range(k)]
                i = int(np.nanargmax(corr))
                pos = hard == j
                best.append(float(roc_auc_score(pos, post[:, i])) if 0 < pos.sum() < len(pos) else None)
        out["gmm_matched_auc"] = best
    print(json.dumps(out))


if __name__ == "__main__":
    main()
