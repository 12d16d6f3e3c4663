"""The attention representations z: 2-d t-SNE maps and how well the classes separate.

One t-SNE for every map of z (tsne_plot.py's Figure 2(c)(d), the run report's panel),
so that both draw the same embedding of the same points.
"""

import warnings

import numpy as np

NEIGHBOURS = 5
# Below this many points exact t-SNE is faster than Barnes-Hut (whose per-step
# thread overhead dominates on small maps) and more accurate.
EXACT_TSNE_MAX_POINTS = 200


def tsne_map(z: np.ndarray, perplexity: float = 40.0, seed: int = 0, method: str | None = None) -> np.ndarray:
    """2-d t-SNE embedding of representations (PCA start, automatic learning rate).

    Args:
        z: (n, units) representations; perplexity must be below n.
        perplexity: t-SNE perplexity (40 as published).
        seed: t-SNE's random state.
        method: ``"exact"`` or ``"barnes_hut"``; None picks exact up to
            ``EXACT_TSNE_MAX_POINTS`` points and Barnes-Hut above.

    Returns:
        (n, 2) float64 points.
    """
    from sklearn.manifold import TSNE

    z = np.asarray(z, np.float64)
    if method is None:
        method = "exact" if len(z) <= EXACT_TSNE_MAX_POINTS else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", method=method,
                random_state=seed).fit_transform(z)


def stratified_subsample(labels: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``max_points`` labels keeping the class proportions.

    Each class gets its proportional share, rounded down, and the points left
    over go to the classes with the largest remainders (every class present
    keeps at least one point when ``max_points`` allows). Indices come back
    sorted.
    """
    labels = np.asarray(labels)
    classes, code, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = counts * max_points / len(labels)
    take = np.floor(share).astype(int)
    if max_points >= len(classes):
        take = np.maximum(take, 1)
    leftover = max_points - take.sum()
    if leftover > 0:
        take[np.argsort(take - share, kind="stable")[:leftover]] += 1
    elif leftover < 0:  # the minimum of one per class overshot: trim the largest classes
        for _ in range(-leftover):
            take[np.argmax(take)] -= 1
    take = np.minimum(take, counts)
    chosen = [rng.choice(np.flatnonzero(code == c), size=take[c], replace=False)
              for c in range(len(classes))]
    return np.sort(np.concatenate(chosen))


def class_separation(z: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """How well classes separate in the representation space.

    Args:
        z: (n, units) representations.
        labels: (n,) class labels.
        seed: for the cross-validation folds.

    Returns:
        dict with ``n``, ``silhouette`` (-1..1, None for fewer than 2 classes),
        ``knn5_accuracy`` and ``knn5_ua`` (cross-validated 5-NN accuracy and
        unweighted average recall, None when a class has a single point), and
        the chance levels ``majority_accuracy`` and ``chance_ua``.
    """
    from sklearn.metrics import balanced_accuracy_score, silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    classes, counts = np.unique(labels, return_counts=True)
    result = {"n": int(len(labels)), "silhouette": None, "knn5_accuracy": None, "knn5_ua": None,
              "majority_accuracy": round(float(counts.max() / len(labels)), 4),
              "chance_ua": round(1 / len(classes), 4)}
    if 2 <= len(classes) < len(labels):
        result["silhouette"] = round(float(silhouette_score(z, labels)), 4)
    folds = min(5, int(counts.min()))
    if len(classes) >= 2 and folds >= 2:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        neighbours = min(NEIGHBOURS, len(labels) - len(labels) // folds - 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            predicted = cross_val_predict(KNeighborsClassifier(neighbours), z, labels, cv=cv)
        result["knn5_accuracy"] = round(float(np.mean(predicted == labels)), 4)
        result["knn5_ua"] = round(float(balanced_accuracy_score(labels, predicted)), 4)
    return result
