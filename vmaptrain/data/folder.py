"""An image folder tree: DIR/train/<class>/*.png|jpg and DIR/test/<class>/*.png|jpg.

Class index = position of the sub-folder name in sorted order of train/'s sub-folders; test/
may omit classes but not add any. Examples are ordered by class, then by file name. Images
are decoded with Pillow: grayscale ones (modes 1, L) give C=1, everything else is converted
to RGB (an alpha channel is dropped); if a tree mixes both, grayscale images are repeated to
3 channels. All images must share one height and width. Other files (e.g. .DS_Store) are ignored.
"""

import os

import numpy as np

from vmaptrain.data.dataset import Dataset, build_dataset
from vmaptrain.data.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_GRAYSCALE_MODES = ("1", "L")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # >8 bits per pixel: not representable as uint8


def _subfolders(path: str) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def list_split(split_dir: str, class_names: list[str]) -> tuple[list[str], list[int]]:
    """Image paths of one split and their class indices, in class then file-name order."""
    paths, labels = [], []
    for index, name in enumerate(class_names):
        class_dir = os.path.join(split_dir, name)
        if not os.path.isdir(class_dir):
            continue
        files = sorted(
            e.name for e in os.scandir(class_dir) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise DataError(f"class folder {class_dir} holds no .png/.jpg images")
        paths += [os.path.join(class_dir, f) for f in files]
        labels += [index] * len(files)
    return paths, labels


def read_image(path: str) -> np.ndarray:
    """One image as uint8 [H, W, 1] (grayscale) or [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in _WIDE_MODES:
                raise DataError(f"{path} has {image.mode} pixels (more than 8 bits); only 8-bit images are supported")
            grayscale = image.mode in _GRAYSCALE_MODES
            pixels = np.asarray(image.convert("L" if grayscale else "RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from None
    return pixels[..., None] if grayscale else pixels


def _stack(images: list[np.ndarray], paths: list[str], reference: str, shape: tuple[int, int, int]) -> np.ndarray:
    """[N, H, W, C] from images that must all be H×W like `reference` (the first train image)."""
    height, width, channels = shape
    out = np.empty((len(images), height, width, channels), np.uint8)
    for i, (image, path) in enumerate(zip(images, paths)):
        if image.shape[:2] != (height, width):
            raise DataError(
                f"images differ in size: {path} is {image.shape[1]}×{image.shape[0]}, "
                f"{reference} is {width}×{height} (width×height)"
            )
        out[i] = image  # a [H, W, 1] image broadcasts to 3 channels when the tree mixes modes
    return out


def load_folder_dataset(name: str, directory: str) -> Dataset:
    split_dirs = {split: os.path.join(directory, split) for split in ("train", "test")}
    for split, path in split_dirs.items():
        if not os.path.isdir(path):
            raise DataError(f"image folder {directory} has no {split}/ sub-folder")
    class_names = _subfolders(split_dirs["train"])
    if not class_names:
        raise DataError(f"{split_dirs['train']} has no class sub-folders")
    extra = sorted(set(_subfolders(split_dirs["test"])) - set(class_names))
    if extra:
        raise DataError(f"{split_dirs['test']} has classes missing from train/: {', '.join(extra)}")
    listed = {split: list_split(path, class_names) for split, path in split_dirs.items()}
    for split, (paths, _) in listed.items():
        if not paths:
            raise DataError(f"{split_dirs[split]} holds no .png/.jpg images")
    decoded = {split: [read_image(p) for p in paths] for split, (paths, _) in listed.items()}
    height, width = decoded["train"][0].shape[:2]
    channels = max(image.shape[2] for images in decoded.values() for image in images)
    reference = listed["train"][0][0]
    arrays = {
        split: _stack(decoded[split], listed[split][0], reference, (height, width, channels)) for split in decoded
    }
    return build_dataset(
        name,
        arrays["train"],
        np.array(listed["train"][1]),
        arrays["test"],
        np.array(listed["test"][1]),
        num_classes=len(class_names),
        class_names=class_names,
    )
