"""CIFAR-100's official python version: where it sits in the data folder and how it is read.

`cifar-100-python/` (what torchvision's download unpacks) holds three pickles: `train` and
`test` (images as (N, 3072) rows, `fine_labels` 0-99 and `coarse_labels` 0-19) and `meta` (their
names). We train on the 100 fine classes, as torchvision's CIFAR100 does. The pickles are read
with data.safe_pickle, which refuses any that asks to run code. The packed archive,
`cifar-100-python.tar.gz`, is read as well.
"""

from __future__ import annotations

from pathlib import Path

from cifar_core.data.dataset import CIFAR100_ARCHIVE, CIFAR100_DIR, SPLITS, Counted
from cifar_core.data.safe_pickle import load_cifar_pickle
from cifar_core.data.sources import Source, iter_archive, unpickle_split
from cifar_core.errors import CorruptDataError

TITLE = "CIFAR-100"

# The fine classes in label order, as the official `meta` names them (used where it is missing).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)


def find_cifar100(root: Path) -> Source | None:
    """The unpacked python version in the data folder, else its archive, else None."""
    folder = Path(root) / CIFAR100_DIR
    if all((folder / split).is_file() for split in SPLITS):
        return Source("cifar100-dir", folder)
    if (Path(root) / CIFAR100_ARCHIVE).is_file():
        return Source("cifar100-archive", Path(root) / CIFAR100_ARCHIVE)
    return None


def _files(source: Source) -> dict[str, bytes]:
    """The bytes of train, test and (if there) meta, by name."""
    wanted = (*SPLITS, "meta")
    if source.kind == "cifar100-dir":
        return {name: (source.path / name).read_bytes() for name in wanted
                if (source.path / name).is_file()}
    return {Path(member.name).name: raw for member, raw in iter_archive(source.path)
            if Path(member.name).name in wanted and CIFAR100_DIR in Path(member.name).parts}


def read_cifar100(source: Source, counted: Counted) -> dict:
    """Both splits, fine labels, the class names from `meta` (the official ones if it is
    missing or unreadable, with a warning)."""
    files = _files(source)
    where = str(source.path)
    missing = [name for name in SPLITS if name not in files]
    if missing:
        raise CorruptDataError(
            f"The CIFAR-100 file '{missing[0]}' is missing from {where}. The python version has "
            "train, test and meta: copy the missing file back, or delete it to download it "
            "again."
        )
    out: dict = {}
    counted(0, len(SPLITS), "files decoded")
    for done, split in enumerate(SPLITS, start=1):
        out[f"{split}_images"], out[f"{split}_labels"] = unpickle_split(
            split, files[split], where, TITLE, "fine_labels")
        counted(done, len(SPLITS), "files decoded")
    classes, warnings = list(CIFAR100_CLASSES), []
    if "meta" in files:
        try:
            classes = list(load_cifar_pickle(files["meta"], f"'meta' in {where}", TITLE)
                           ["fine_label_names"])
        except CorruptDataError:
            raise  # it asked to run code: refused, not merely unreadable
        except Exception:
            warnings.append("CIFAR-100's meta file is unreadable: using the official class "
                            "names.")
    out.update(classes=classes, warnings=warnings)
    return out
