"""The PyTorch CIFAR-10 tutorial's own code path: the reference every speed-up is measured against.

Faithful to https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html: torchvision's
CIFAR10 dataset with ToTensor() + Normalize((0.5,)*3, (0.5,)*3), DataLoader(batch_size=4,
shuffle=True, num_workers=2), the tutorial's Net, CrossEntropyLoss, SGD(lr=0.001, momentum=0.9),
a loss line every 2000 minibatches, and the torch.no_grad() test loop at batch 4. Torch's thread
count is left at its default, as the tutorial leaves it. Added, and nothing else: timing, a seed
(set just before Net() as cifar_core.training.loop.build_model does, so both start from the same
weights), and an optional class-balanced subset for quick runs.

    python bench/tutorial_loop.py --data-dir /tmp/cifar/batches [--epochs 2] [--train-size N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms as transforms
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import CIFAR10

# Run as a script, Python puts bench/ on the path, not the repository root that holds cifar_core.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core.training.loop import balanced_subset  # noqa: E402
from cifar_core.training.models import Net  # noqa: E402  (the tutorial's Net, layer for layer)

BATCH_SIZE = 4  # the tutorial's
NUM_WORKERS = 2  # the tutorial's
LOG_EVERY = 2000  # minibatches between the tutorial's loss lines


class OfflineCIFAR10(CIFAR10):
    """torchvision's CIFAR10, minus the md5 check. Our offline batches are decoded from a JPEG
    copy of CIFAR-10 (see /work/shared/data/README.md), so their md5 sums differ from the
    official release and the stock dataset refuses them (download=True cannot fix that here:
    there is no network). Everything else, reading and __getitem__ included, is torchvision's."""

    # _load_meta checks batches.meta against the official md5 too; None keeps only its
    # "file exists" check.
    meta = {**CIFAR10.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


def tutorial_transform() -> transforms.Compose:
    """The tutorial's transform: PIL image -> float tensor in [-1, 1]."""
    return transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])


def load_trainset(root: Path | str) -> CIFAR10:
    """The tutorial's trainset, from `root/cifar-10-batches-py`."""
    return OfflineCIFAR10(root=str(root), train=True, download=False,
                          transform=tutorial_transform())


def load_testset(root: Path | str) -> CIFAR10:
    """The tutorial's testset, from `root/cifar-10-batches-py`."""
    return OfflineCIFAR10(root=str(root), train=False, download=False,
                          transform=tutorial_transform())


@dataclass
class TutorialTraining:
    """A trained Net and how long the tutorial's loop took."""

    net: nn.Module
    images: int  # images trained on, all epochs together
    train_s: float  # the epoch loops, DataLoader worker start-ups included
    images_per_s: float
    threads: int  # torch intra-op threads it ran with (the default)


@dataclass
class TutorialTest:
    """The tutorial's test loop: accuracy and its wall time."""

    accuracy: float  # percent
    images: int
    test_s: float  # the loop over the testloader, worker start-up included


def train_tutorial(trainset: Dataset, epochs: int = 2, seed: int = 0,
                   train_size: int | None = None,
                   log: Callable[[str], None] = print) -> TutorialTraining:
    """The tutorial's training section, timed. train_size picks the same class-balanced subset
    cifar_core.training.loop uses for that seed (None: all 50,000 images, as the tutorial)."""
    if train_size is not None:
        indices = balanced_subset(torch.tensor(trainset.targets), train_size, seed)
        trainset = Subset(trainset, indices.tolist())
    torch.manual_seed(seed)
    net = Net()
    trainloader = DataLoader(trainset, batch_size=BATCH_SIZE, shuffle=True,
                             num_workers=NUM_WORKERS)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    images = 0
    start = time.perf_counter()
    for epoch in range(epochs):  # loop over the dataset multiple times
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            # get the inputs; data is a list of [inputs, labels]
            inputs, labels = data

            # zero the parameter gradients
            optimizer.zero_grad()

            # forward + backward + optimize
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()

            # print statistics
            running_loss += loss.item()
            images += labels.size(0)
            if i % LOG_EVERY == LOG_EVERY - 1:  # print every 2000 mini-batches
                log(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / LOG_EVERY:.3f}")
                running_loss = 0.0
    train_s = time.perf_counter() - start
    log("Finished Training")
    return TutorialTraining(net=net, images=images, train_s=train_s,
                            images_per_s=images / max(train_s, 1e-9),
                            threads=torch.get_num_threads())


def test_tutorial(net: nn.Module, testset: Dataset) -> TutorialTest:
    """The tutorial's test section (batch 4, 2 workers, no_grad), timed."""
    testloader = DataLoader(testset, batch_size=BATCH_SIZE, shuffle=False,
                            num_workers=NUM_WORKERS)
    correct = 0
    total = 0
    start = time.perf_counter()
    # since we're not training, we don't need to calculate the gradients for our outputs
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            # calculate outputs by running images through the network
            outputs = net(images)
            # the class with the highest energy is what we choose as prediction
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    test_s = time.perf_counter() - start
    return TutorialTest(accuracy=100.0 * correct / max(total, 1), images=total, test_s=test_s)


def main(argv: list[str] | None = None) -> int:
    """Run the tutorial once and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches"),
                        help="folder holding cifar-10-batches-py/")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=None)
    args = parser.parse_args(argv)
    training = train_tutorial(load_trainset(args.data_dir), args.epochs, args.seed,
                              args.train_size)
    test = test_tutorial(training.net, load_testset(args.data_dir))
    print(f"Accuracy of the network on the {test.images} test images: {test.accuracy:.2f} %")
    print(f"train: {training.images:,} images in {training.train_s:.1f} s = "
          f"{training.images_per_s:,.0f} images/s ({training.threads} threads); "
          f"test loop: {test.test_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
