"""Class balance: how unequal the classes are, weights that even them out, and splits that keep
every class on both sides. Pure numpy on integer labels; nothing here reads data or imports Keras.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

IMBALANCE_HINT = 3.0  # above this ratio of the largest class to the smallest, say so


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]


def imbalance_ratio(labels: np.ndarray, num_classes: int) -> float:
    """Images in the largest class over images in the smallest present one (1.0 = balanced)."""
    counts = class_counts(labels, num_classes)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) else 1.0


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Keras' `class_weight` that makes every class weigh as much in the loss, as scikit-learn's
    "balanced" does: n / (classes present x count). A class with no images gets 1."""
    counts = class_counts(labels, num_classes)
    present = int((counts > 0).sum())
    total = int(counts.sum())
    return {
        c: (total / (present * int(counts[c])) if counts[c] else 1.0) for c in range(num_classes)
    }


def stratified_split(
    labels: np.ndarray, fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), each sorted: `fraction` of every class held out, rounded, and at
    least one image of each class that has two or more, so every class is seen on both sides."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    if fraction > 0:
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            n = round(len(members) * fraction)
            if len(members) >= 2:
                n = min(max(n, 1), len(members) - 1)
            held.append(members[:n])
    out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[out] = False
    return np.flatnonzero(mask), out


def stratified_subset(labels: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Exactly `n` indices (sorted), each class in its share of the whole (largest remainders),
    and every class at least once where `n` allows: a quick try that still sees every class."""
    labels = np.asarray(labels, dtype=np.int64)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    share = np.floor(exact).astype(np.int64)
    if n >= len(classes):
        share = np.maximum(share, 1)
    while share.sum() > n:  # the minimum of one pushed it over: take from the largest
        share[np.argmax(share)] -= 1
    for c in np.argsort(share - exact)[: n - int(share.sum())]:  # then the largest remainders
        share[c] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
        for c, k in zip(classes, share, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


LIMIT_SEED = 0  # the `limit`'s choice depends on the files only: the same limit, the same files


def limited_rows(labels: Mapping[str, np.ndarray], limit: int) -> dict[str, np.ndarray]:
    """Rows (sorted indices into each split's `labels`) for a quick try: `limit` of the "train"
    split, and the same share of every other split (validation, test), each chosen per class
    (`stratified_subset`, seeded by a constant) and keeping one image of every class present
    where the share would drop it."""
    train = len(labels["train"])
    if limit >= train:
        return {name: np.arange(len(values)) for name, values in labels.items()}
    share = limit / train
    out: dict[str, np.ndarray] = {}
    for name, values in labels.items():
        if name == "train":
            n = limit
        else:
            n = max(round(len(values) * share), min(len(values), len(np.unique(values))))
        out[name] = stratified_subset(values, n, seed=LIMIT_SEED)
    return out
