"""Reading NEU-Seg style datasets.

Layout (as in NEU-Seg / mmsegmentation):

    DIR/ImageSets/Segmentation/{train,val,test}.txt   one image id per line
    DIR/img_dir/<split>/<id>.jpg                      photo (any Pillow format)
    DIR/ann_dir/<split>/<id>.png                      class map: 0 bg, 1 inclusion,
                                                      2 patches, 3 scratches

Images go through the inference module's own gray conversion and resize, so training,
evaluation and the service see identical inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from services.detect.segmenter import resize_gray, to_gray

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    image_id: str
    image: Image.Image
    mask: np.ndarray  # uint8 HxW class map at the image's own size


@dataclass(frozen=True)
class SplitArrays:
    ids: list[str]
    images: np.ndarray  # uint8 (N, H, W) gray, resized to the model size
    masks: np.ndarray  # uint8 (N, H, W) class maps, resized with nearest neighbour


def split_ids(root: Path, split: str, limit: int | None = None) -> list[str]:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"split listing not found: {listing}")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return ids[:limit] if limit else ids


def image_path(root: Path, split: str, image_id: str) -> Path:
    folder = root / "img_dir" / split
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{image_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no image for id {image_id!r} in {folder}")


def read_mask(root: Path, split: str, image_id: str) -> np.ndarray:
    with Image.open(root / "ann_dir" / split / f"{image_id}.png") as mask:
        if mask.mode not in ("L", "P"):
            raise ValueError(f"mask {image_id} has mode {mask.mode}, expected a class map")
        return np.asarray(mask, dtype=np.uint8).copy()


def iter_samples(root: Path, split: str, limit: int | None = None) -> Iterator[Sample]:
    """Images and masks at their stored size, for end-to-end evaluation."""
    for image_id in split_ids(root, split, limit):
        with Image.open(image_path(root, split, image_id)) as image:
            image.load()
            mask = read_mask(root, split, image_id)
            if mask.shape != (image.height, image.width):
                raise ValueError(f"{image_id}: mask {mask.shape} vs image {image.size[::-1]}")
            yield Sample(image_id, image.copy(), mask)


def load_split(root: Path, split: str, size: int, limit: int | None = None) -> SplitArrays:
    """Whole split in memory at model size (NEU-Seg train is 125 MB as uint8 at 200 px)."""
    ids, images, masks = [], [], []
    for sample in iter_samples(root, split, limit):
        ids.append(sample.image_id)
        images.append(resize_gray(to_gray(sample.image), (size, size)))
        masks.append(_resize_mask(sample.mask, size))
    if not ids:
        raise ValueError(f"split {split!r} in {root} is empty")
    return SplitArrays(ids, np.stack(images), np.stack(masks))


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    resized = Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.uint8)
