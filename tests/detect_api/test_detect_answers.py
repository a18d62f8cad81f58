"""What `POST /api/detect` answers is what the bare model says in-process (document 004): the same
labels, counts, confidence and drawn picture, byte for byte, for every kind of upload, whether the
image comes alone, with others in its request, or in a batch with concurrent requests' images.
(Byte for byte where the service runs on the CPU, as this process does; on a GPU the probabilities
may differ in their last bits, and labels and counts are compared.)"""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")

from services.detect.segmenter import DefectSegmenter  # noqa: E402
from services.detect.settings import DetectSettings  # noqa: E402
from shared.images import decode_image  # noqa: E402
from shared.onnx_sessions import cuda_usable  # noqa: E402
from tests.fixtures.steel import patch_image, png_bytes, scratch_image, steel_photo  # noqa: E402
from tests.helpers import user_client  # noqa: E402

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def segmenter() -> DefectSegmenter:
    return DefectSegmenter(providers=["CPUExecutionProvider"], num_threads=DetectSettings().inference_threads)


EXACT = not cuda_usable()  # the service runs on the CPU too


def _jpeg(data: bytes, rotate_tag: int | None = None) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    exif = image.getexif()
    if rotate_tag is not None:
        exif[EXIF_ORIENTATION] = rotate_tag
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def _uploads() -> list[tuple[str, bytes]]:
    scratch = scratch_image(seed=3)
    return [
        ("plate.jpg", _jpeg(steel_photo(31))),
        ("wide.png", steel_photo(32, size=(420, 180))),
        ("clean.png", steel_photo(33, scratch=False)),
        ("patch.png", png_bytes(Image.fromarray(patch_image(seed=2)))),
        ("alpha.png", png_bytes(Image.fromarray(scratch).convert("RGBA"))),
        ("deep.png", png_bytes(Image.fromarray(scratch.astype(np.uint16) * 200))),  # 16-bit gray
        ("palette.png", png_bytes(Image.fromarray(patch_image(seed=4)).convert("P"))),
        ("turned.jpg", _jpeg(steel_photo(34, size=(300, 200)), rotate_tag=6)),  # shown 200 wide, 300 high
    ]


def _expected(segmenter: DefectSegmenter, name: str, data: bytes) -> dict:
    image = decode_image(data)
    (result,) = segmenter.predict_batch([image])
    return {
        "defect_count": result.defect_count,
        "dice": result.dice,
        "labels": result.labels,
        "name": name,
        "result_image": base64.b64encode(segmenter.render(image, result)).decode(),
    }


def _comparable(answer: dict) -> dict:
    return {
        key: value
        for key, value in answer.items()
        if key in ("name", "labels", "defect_count") or EXACT and key != "processing_time"
    }


def _answered(answer: dict) -> dict:
    assert answer["processing_time"] > 0
    return _comparable(answer)


async def test_answers_equal_the_bare_model_for_every_kind_of_upload(platform, mailbox, segmenter):
    client, _ = await user_client(platform, mailbox)
    uploads = _uploads()
    expected = [_comparable(_expected(segmenter, name, data)) for name, data in uploads]

    together = await client.post("/api/detect", files=[("images", (n, d, "image/png")) for n, d in uploads])
    assert together.status_code == 200, together.text
    assert [_answered(a) for a in together.json()] == expected
    turned = Image.open(io.BytesIO(base64.b64decode(together.json()[-1]["result_image"])))
    assert turned.size == (200, 300)  # the EXIF orientation is applied before drawing

    alone = [await client.post("/api/detect", files=[("images", (n, d, "image/png"))]) for n, d in uploads]
    assert [_answered(r.json()[0]) for r in alone] == expected
    await client.aclose()


async def test_concurrent_requests_batched_together_each_get_their_own_answer(platform, mailbox, segmenter):
    client, _ = await user_client(platform, mailbox)
    uploads = [
        (f"c{seed}.png", steel_photo(40 + seed, scratch=seed % 2 == 0, size=(200 + 8 * seed, 200)))
        for seed in range(12)
    ]
    expected = [_comparable(_expected(segmenter, name, data)) for name, data in uploads]
    responses = await asyncio.gather(
        *(client.post("/api/detect", files=[("images", (n, d, "image/png"))]) for n, d in uploads)
    )
    assert [r.status_code for r in responses] == [200] * len(uploads)
    assert [_answered(r.json()[0]) for r in responses] == expected
    await client.aclose()
