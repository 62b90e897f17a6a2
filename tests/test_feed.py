"""The training feed: every row once per epoch, a fresh seeded order each epoch, labels with
their images, one-hot labels and sample weights made per batch, and memory-mapped arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_core.feed import Feed


def tiny(n: int = 23) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((n, 2, 2, 1), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n)  # each image carries its own row number
    return x, (np.arange(n) % 3).astype(np.int64)


def epoch_rows(feed: Feed) -> np.ndarray:
    return np.concatenate([feed[i][0][:, 0, 0, 0] for i in range(len(feed))]).astype(np.int64)


def test_every_row_once_per_epoch_and_reshuffled() -> None:
    x, y = tiny()
    rows = np.arange(3, 23)
    feed = Feed(x, y, rows, batch_size=6, shuffle=True, seed=5)
    assert len(feed) == 4
    first = epoch_rows(feed)
    assert sorted(first) == rows.tolist()
    feed.on_epoch_end()
    second = epoch_rows(feed)
    assert sorted(second) == rows.tolist()
    assert (
        feed.order.tolist() != Feed(x, y, rows, batch_size=6, shuffle=True, seed=5).order.tolist()
    )
    again = Feed(x, y, rows, batch_size=6, shuffle=True, seed=5, epoch=1)  # a resumed run
    assert again.order.tolist() == feed.order.tolist()


def test_unshuffled_feed_keeps_the_given_order() -> None:
    x, y = tiny()
    feed = Feed(x, y, np.arange(10), batch_size=4)
    assert epoch_rows(feed).tolist() == list(range(10))
    feed.on_epoch_end()
    assert epoch_rows(feed).tolist() == list(range(10))


def test_batches_match_their_labels_and_one_hot() -> None:
    x, y = tiny()
    feed = Feed(x, y, np.arange(23), batch_size=5, shuffle=True, seed=1, num_classes=3)
    for i in range(len(feed)):
        images, targets = feed[i]
        assert images.dtype == np.uint8 and targets.dtype == np.float32
        assert targets.shape == (len(images), 3)
        assert (targets.argmax(axis=1) == images[:, 0, 0, 0] % 3).all()
    with pytest.raises(IndexError):
        feed[len(feed)]


def test_class_weights_become_sample_weights() -> None:
    x, y = tiny()
    feed = Feed(x, y, np.arange(23), batch_size=8, class_weight={0: 0.5, 1: 2.0, 2: 3.0})
    images, labels, weights = feed[1]
    assert (labels == images[:, 0, 0, 0] % 3).all()
    assert weights.tolist() == [{0: 0.5, 1: 2.0, 2: 3.0}[int(label)] for label in labels]


def test_memory_mapped_arrays(tmp_path) -> None:
    x, y = tiny()
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    feed = Feed(mapped, y, np.arange(23), batch_size=7, shuffle=True, seed=2)
    images, labels = feed[0]
    assert type(images) is np.ndarray
    assert (images[:, 0, 0, 0] % 3 == labels).all()
    assert sorted(epoch_rows(feed)) == list(range(23))


def test_memory_mapped_rows_are_read_from_the_file_not_the_map(tmp_path) -> None:
    x, y = tiny()
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    feed = Feed(mapped, y, np.arange(23), batch_size=23)
    assert feed.read.fd is not None
    assert np.array_equal(feed[0][0], x)
    view = Feed(mapped[5:], y[5:], np.arange(18), batch_size=18)  # a view: read through the map
    assert view.read.fd is None and np.array_equal(view[0][0], x[5:])


def test_alternate_flip_mirrors_each_image_in_every_other_epoch() -> None:
    n = 400
    x = np.zeros((n, 1, 2, 1), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 250 + 1  # the left pixel says the row; the right one is 0
    y = np.zeros(n, dtype=np.int64)

    def mirrored(feed: Feed) -> dict[int, bool]:
        seen = {}
        for i in range(len(feed)):
            rows, images = feed.batch_rows(i), feed[i][0]
            for row, image in zip(rows.tolist(), images, strict=True):
                assert image[0, :, 0].tolist() in ([x[row, 0, 0, 0], 0], [0, x[row, 0, 0, 0]])
                seen[row] = bool(image[0, 0, 0] == 0)
        return seen

    feed = Feed(x, y, np.arange(n), batch_size=64, shuffle=True, seed=3, alternate_flip=True)
    first = mirrored(feed)
    assert 150 < sum(first.values()) < 250  # about half of the images in the first epoch
    feed.on_epoch_end()
    second = mirrored(feed)
    assert all(second[row] != first[row] for row in range(n))  # the others in the next
    feed.on_epoch_end()
    assert mirrored(feed) == first
    resumed = Feed(
        x, y, np.arange(n), batch_size=64, shuffle=True, seed=3, epoch=1, alternate_flip=True
    )
    assert mirrored(resumed) == second  # a resumed run goes on alternating where it was
    plain = Feed(x, y, np.arange(n), batch_size=64, shuffle=True, seed=3)
    assert not any(mirrored(plain).values())  # without it the feed leaves the images alone
    assert not x[:, 0, 1].any()  # and the dataset's arrays are never changed


def _views(image: np.ndarray, pad: tuple[int, int]) -> list[tuple[bool, int, int, np.ndarray]]:
    """Every image the feed may make of `image`: (mirrored, row offset, column offset, pixels),
    a crop of the reflect-padded image, mirrored or not."""
    height, width = image.shape[:2]
    found = []
    for mirrored in (False, True):
        source = image[:, ::-1] if mirrored else image
        padded = np.pad(source, [(pad[0], pad[0]), (pad[1], pad[1]), (0, 0)], mode="reflect")
        for dy in range(2 * pad[0] + 1):
            for dx in range(2 * pad[1] + 1):
                found.append((mirrored, dy, dx, padded[dy : dy + height, dx : dx + width]))
    return found


def test_random_flips_and_shifts_are_mirrored_crops_of_a_reflected_border() -> None:
    rng = np.random.default_rng(0)
    n = 300
    x = rng.integers(0, 256, size=(n, 6, 5, 2), dtype=np.uint8)  # not square, two channels
    kept = x.copy()
    y = np.arange(n) % 3
    feed = Feed(x, y, np.arange(n), batch_size=64, shuffle=True, seed=4, flip=True, shift=(2, 1))
    seen = set()
    for i in range(len(feed)):
        rows, (images, labels) = feed.batch_rows(i), feed[i]
        assert images.dtype == np.uint8 and images.shape == (len(rows), 6, 5, 2)
        assert labels.tolist() == y[rows].tolist()  # labels stay with their images
        for row, image in zip(rows.tolist(), images, strict=True):
            matches = [v[:3] for v in _views(x[row], (2, 1)) if np.array_equal(v[3], image)]
            assert matches, f"row {row} came out as no mirrored crop of its image"
            seen.add(matches[0])
    assert len(seen) == 2 * 5 * 3  # every mirror and offset drawn
    np.testing.assert_array_equal(x, kept)  # the dataset's arrays are never changed
    again = Feed(x, y, np.arange(n), batch_size=64, shuffle=True, seed=4, flip=True, shift=(2, 1))
    np.testing.assert_array_equal(again[1][0], feed[1][0])  # seeded: a resumed run repeats them
    feed.on_epoch_end()
    later = feed[1][0]
    resumed = Feed(
        x, y, np.arange(n), batch_size=64, shuffle=True, seed=4, epoch=1, flip=True, shift=(2, 1)
    )
    np.testing.assert_array_equal(resumed[1][0], later)
    only_shift = Feed(x, y, np.arange(n), batch_size=64, shift=(1, 0))
    for row, image in zip(only_shift.batch_rows(0).tolist(), only_shift[0][0], strict=True):
        assert any(
            not m and dx == 0 and np.array_equal(v, image) for m, _, dx, v in _views(x[row], (1, 0))
        )
    with pytest.raises(ValueError, match="less than the image size"):
        Feed(x, y, np.arange(n), batch_size=8, shift=(6, 0))
