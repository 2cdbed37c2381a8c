"""The data path: each epoch's minibatches as slices of reused device tensors.

The training images sit on the device as one uint8 tensor; each epoch shuffles the used ones
into one reused buffer, and a few hundred at a time are normalised into a small reused float
buffer (it stays in the CPU's caches) whose slices are the minibatches. So there is no
DataLoader, no worker process, no per-image transform, and no 600 MB float copy of the
training set to build and shuffle (bench/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from cifar_core.data.dataset import ImageData, normalize
from cifar_core.training.augment import alternating_flips
from cifar_core.training.augment import augment as augmented

# Images normalised at a time (rounded up to whole minibatches): about 3 MB of floats, which
# stay in the CPU's caches until their minibatches have used them.
NORMALIZE_CHUNK = 256


class Minibatches:
    """The minibatches of `batch_size` images drawn from `subset` (positions in the training
    set), in a new order each epoch; the last one of an epoch may be short. `alternating_flip`:
    the augmentation's flip mirrors each picture every other epoch (augment.alternating_flips),
    starting from a draw per picture made in the first epoch."""

    def __init__(self, data: ImageData, subset: torch.Tensor, batch_size: int,
                 device: torch.device, augment: str = "none", alternating_flip: bool = False):
        # Each epoch gathers the subset in its own order straight from the (device's copy of
        # the) whole set, so a subset is never copied.
        self.subset = subset.to(device)
        self.images, self.labels = data.train_images.to(device), data.train_labels.to(device)
        self.batch_size, self.device, self.augment = batch_size, device, augment
        self.images_per_epoch = len(subset)
        self.per_epoch = math.ceil(self.images_per_epoch / batch_size)
        n, shape = self.images_per_epoch, self.images.shape[1:]
        self.chunk = batch_size * max(1, NORMALIZE_CHUNK // batch_size)
        self._images_epoch = torch.empty((n, *shape), dtype=self.images.dtype, device=device)
        self._labels_epoch = torch.empty(n, dtype=self.labels.dtype, device=device)
        self._inputs_chunk = torch.empty((min(self.chunk, n), *shape), device=device)
        self.alternating_flip = alternating_flip and augment != "none"
        self._first_flips: torch.Tensor | None = None  # per picture of the whole set
        self._epochs = 0

    def first_images(self, count: int = 5000) -> torch.Tensor:
        """The first `count` images of the subset, normalised (for a network that sets itself
        up from the data before training)."""
        return normalize(self.images[self.subset[:count]])

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) of each minibatch of one epoch, shuffled by `generator`. The
        inputs are a view of a buffer that the next chunk overwrites: use them before asking
        for more."""
        # One shuffled copy per epoch makes every minibatch a contiguous slice (no gather).
        order = self.subset[torch.randperm(self.images_per_epoch, generator=generator)
                            .to(self.device)]
        mirrored = None
        if self.alternating_flip:
            if self._first_flips is None:
                self._first_flips = (torch.rand(len(self.images), generator=generator)
                                     < 0.5).to(self.device)
            mirrored = alternating_flips(self._first_flips, self._epochs)[order]
        self._epochs += 1
        torch.index_select(self.images, 0, order, out=self._images_epoch)
        torch.index_select(self.labels, 0, order, out=self._labels_epoch)
        for i in range(self.per_epoch):
            first = i * self.batch_size
            offset = first % self.chunk
            if offset == 0:
                chunk_images = self._images_epoch[first:first + self.chunk]
                inputs = self._inputs_chunk[:len(chunk_images)]
                normalize(chunk_images, out=inputs)
                if self.augment != "none":  # new copies each epoch, drawn from `generator`
                    flips = None if mirrored is None else mirrored[first:first + self.chunk]
                    inputs.copy_(augmented(inputs, self.augment, generator, flips))
            labels = self._labels_epoch[first:first + self.batch_size]
            yield self._inputs_chunk[offset:offset + len(labels)], labels
