"""The training feed: batches read by index from a dataset's uint8 arrays, never the whole set.

`Feed` is a `keras.utils.PyDataset` over `x[rows]`, `y[rows]` for a given array of row indices
into the arrays (in RAM or memory-mapped on disk). Each epoch walks a fresh seeded permutation of
those rows, so shuffling copies only the index array; a batch is the one copy of its images. Labels
come out as integers, or as one-hot floats (for label smoothing) made per batch; class weights
become per-image sample weights, since the feed hands Keras the weights itself. With
`alternate_flip` the feed mirrors each image in every other epoch (a seeded half of the rows in
even epochs, the other half in odd ones), which a model's random layers cannot do: they do not
know which image is which. With `flip` and `shift` the feed mirrors half the images at random and
shifts each by a random whole number of pixels, up to `shift` (height, width) each way, filling the
border by reflection (a random crop of a reflect-padded image): the same job as the model's
augmentation layers, done on the batch's uint8 pixels in numpy, where on TensorFlow without XLA
(a CPU) it costs a fraction of what any layer in the training step does
(`cnn_core.augment.feed_augments`). Each batch's draws are seeded by the run's seed, the epoch and
the batch, so a resumed run continues as it began.

Nothing here knows about runs, models or the dashboard: it turns indices into batches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from cnn_core._keras import keras
from cnn_core.data.pixels import RowReader


class Feed(keras.utils.PyDataset):
    """Batches of `x[rows]` and their labels, in a seeded order reshuffled every epoch."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rows: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,  # the first epoch's number, so that a resumed run continues the orders
        num_classes: int | None = None,  # given: labels come out one-hot float32
        class_weight: Mapping[int, float] | None = None,  # given: a third item, sample weights
        multiple_of: int = 1,  # every batch's size divides by this (devices): the rest is left out
        shard: tuple[int, int] = (0, 1),  # (this process, processes): its share of each batch
        alternate_flip: bool = False,  # mirror each row's image in every other epoch
        flip: bool = False,  # mirror half the images at random (unless alternate_flip)
        shift: tuple[int, int] = (0, 0),  # shift by up to (rows, columns) pixels each way
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
        self.x, self.y = x, y
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.num_classes = num_classes
        self.weights = None
        if class_weight is not None:  # a lookup table by label, so a batch's weights are a take
            size = 1 + max([*class_weight, int(y.max()) if len(y) else 0])
            self.weights = np.ones(size, dtype=np.float32)
            for label, weight in class_weight.items():
                self.weights[int(label)] = weight
        self.multiple_of, (self.part, self.parts) = max(int(multiple_of), 1), shard
        if self.multiple_of % self.parts or self.batch_size % self.multiple_of:
            raise ValueError(
                f"batch_size {batch_size} must divide by multiple_of {multiple_of}, and it by "
                f"the {self.parts} processes."
            )
        self.epoch = int(epoch)
        self.order = self._order()
        self.mirrored = None  # per row: 1 where its image is mirrored in even epochs
        if alternate_flip:
            self.mirrored = np.random.default_rng([self.seed, 1]).integers(
                0, 2, size=len(x), dtype=np.uint8
            )
        self.flip = bool(flip) and not alternate_flip
        self.shift = (max(int(shift[0]), 0), max(int(shift[1]), 0))
        if self.shift != (0, 0) and (self.shift[0] >= x.shape[1] or self.shift[1] >= x.shape[2]):
            raise ValueError(f"shift {shift} must be less than the image size {x.shape[1:3]}.")
        self.read = RowReader(x)  # a memory-mapped .npy is read with os.preadv

    def _order(self) -> np.ndarray:
        order = self.rows
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.rows)
        return order[: len(order) - len(order) % self.multiple_of]  # a few left out, see init

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def batch_rows(self, index: int) -> np.ndarray:
        """The rows of batch `index` this epoch, ascending (reads from disk go forward); in a
        run trained by several processes, this process's share of them."""
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        if self.parts == 1:
            return rows
        share = len(rows) // self.parts
        return rows[self.part * share : (self.part + 1) * share]

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} is out of range (the feed has {len(self)} batches).")
        rows = self.batch_rows(index)
        labels = self.y[rows]
        images = self.read(rows)  # a fresh array: mirrored in place
        if self.mirrored is not None:
            mirror = (self.mirrored[rows] ^ (self.epoch & 1)).astype(bool)
            images[mirror] = images[mirror, :, ::-1]
        if self.flip or self.shift != (0, 0):
            images = self._flip_and_shift(images, index)
        targets = labels
        if self.num_classes is not None:
            targets = np.eye(self.num_classes, dtype=np.float32)[labels]
        if self.weights is None:
            return images, targets
        return images, targets, self.weights[labels]

    def _flip_and_shift(self, images: np.ndarray, index: int) -> np.ndarray:
        """`images` mirrored at random (with `flip`) and shifted at random (with `shift`)."""
        rng = np.random.default_rng([self.seed, 2, self.epoch, index])
        count = len(images)
        if self.flip:
            mirror = rng.random(count) < 0.5
            images[mirror] = images[mirror, :, ::-1]
        pad_h, pad_w = self.shift
        if not count or (pad_h, pad_w) == (0, 0):
            return images
        height, width = images.shape[1:3]
        pads = [(0, 0), (pad_h, pad_h), (pad_w, pad_w)] + [(0, 0)] * (images.ndim - 3)
        padded = np.pad(images, pads, mode="reflect")
        # one crop offset per image: the images that share an offset are cut in one slice
        offset = rng.integers(0, 2 * pad_h + 1, count) * (2 * pad_w + 1) + rng.integers(
            0, 2 * pad_w + 1, count
        )
        out = np.empty_like(images)
        for value in np.unique(offset).tolist():
            chosen = np.flatnonzero(offset == value)
            dy, dx = divmod(value, 2 * pad_w + 1)
            out[chosen] = padded[chosen, dy : dy + height, dx : dx + width]
        return out

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
