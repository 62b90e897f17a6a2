"""Class balance: ratios, balanced weights and stratified splits, on small label arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_core.balance import balanced_class_weights, imbalance_ratio, stratified_split


def test_imbalance_ratio_and_balanced_weights():
    labels = np.array([0] * 90 + [1] * 10)
    assert imbalance_ratio(labels, 2) == pytest.approx(9.0)
    weights = balanced_class_weights(labels, 3)  # class 2 has no images
    assert weights[0] == pytest.approx(100 / (2 * 90)) and weights[1] == pytest.approx(5.0)
    assert weights[2] == 1.0
    # weighted, both classes count the same
    assert 90 * weights[0] == pytest.approx(10 * weights[1])
    assert imbalance_ratio(np.array([0, 1, 1, 0]), 2) == 1.0


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 2 + [3])
    kept, held = stratified_split(labels, 0.2, seed=1)
    assert sorted([*kept, *held]) == list(range(len(labels)))
    assert np.bincount(labels[held], minlength=4).tolist() == [10, 1, 1, 0]
    assert np.bincount(labels[kept], minlength=4).tolist() == [40, 2, 1, 1]
    again = stratified_split(labels, 0.2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((kept, held), again, strict=True))
    assert len(stratified_split(labels, 0.0, seed=1)[1]) == 0


def test_a_random_split_can_miss_a_small_class_and_a_stratified_one_cannot():
    labels = np.array([0] * 95 + [1] * 5)
    missed = 0
    for seed in range(200):
        order = np.random.default_rng(seed).permutation(len(labels))
        missed += 1 not in labels[order[:20]]
        assert 1 in labels[stratified_split(labels, 0.2, seed=seed)[1]]
    assert missed > 0  # what the plain shuffle did before


def test_a_stratified_subset_has_exactly_n_and_every_class():
    from cnn_core.balance import stratified_subset

    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    for n in (3, 10, 100, 999):
        subset = stratified_subset(labels, n, seed=2)
        assert len(subset) == len(set(subset.tolist())) == n
        assert set(labels[subset].tolist()) == {0, 1, 2}
    counts = np.bincount(labels[stratified_subset(labels, 100, seed=2)]).tolist()
    assert counts == [90, 9, 1]
    assert len(stratified_subset(labels, 2000, seed=2)) == 1000
