"""Pascal VOC annotation XML: a safe parser, a writer, and pairing of images with their XML files.

Parsing goes through defusedxml with DTDs forbidden outright: VOC files never need one, and refusing it
refuses entity expansion ("billion laughs") and external entities (file or network reads) with it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from .ingest import IngestError, stem_of

DEFAULT_MAX_XML_BYTES = 1024 * 1024
DEFAULT_MAX_OBJECTS = 10_000
_MAX_TEXT_CHARS = 1024


class VocError(IngestError):
    """An annotation file that is not valid, safe Pascal VOC."""


Number = int | float


@dataclass(frozen=True)
class VocObject:
    name: str
    xmin: Number
    ymin: Number
    xmax: Number
    ymax: Number
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    width: int
    height: int
    depth: int = 3
    objects: tuple[VocObject, ...] = ()
    folder: str = ""
    segmented: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


# ------------------------------------------------------------------------------------------- parsing


def parse_voc(
    data: bytes | str,
    filename: str = "annotation.xml",
    *,
    image_size: tuple[int, int] | None = None,
    max_bytes: int = DEFAULT_MAX_XML_BYTES,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> VocAnnotation:
    """Parse and validate one VOC XML document; ``filename`` names the upload in errors.

    ``image_size`` (width, height) comes from the decoded image when the caller has it: it must agree with
    ``<size>``, and stands in for a missing or zero ``<size>`` (some tools write 0x0).
    """
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise VocError(filename, f"annotation file larger than {max_bytes} bytes")
    try:
        root = defused_fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise VocError(filename, f"forbidden XML construct ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise VocError(filename, f"malformed XML ({exc})") from None
    if root.tag != "annotation":
        raise VocError(filename, f"root element is <{root.tag}>, not <annotation>")
    return _read_annotation(root, filename, image_size, max_objects)


def _read_annotation(
    root: ET.Element, filename: str, image_size: tuple[int, int] | None, max_objects: int
) -> VocAnnotation:
    width, height, depth = _read_size(root.find("size"), filename)
    if image_size is not None:
        if (width, height) not in ((0, 0), image_size):
            raise VocError(
                filename, f"<size> {width}x{height} does not match the image's {image_size[0]}x{image_size[1]}"
            )
        width, height = image_size
    if width <= 0 or height <= 0:
        raise VocError(filename, "<size> must give a positive width and height")
    elements = root.findall("object")
    if len(elements) > max_objects:
        raise VocError(filename, f"{len(elements)} objects, more than the limit of {max_objects}")
    objects = tuple(
        _read_object(element, f"object {index + 1}", filename, width, height) for index, element in enumerate(elements)
    )
    return VocAnnotation(
        filename=_text(root, "filename", filename),
        width=width,
        height=height,
        depth=depth,
        objects=objects,
        folder=_text(root, "folder", filename),
        segmented=_flag(root, "segmented", filename, "annotation"),
    )


def _read_size(size: ET.Element | None, filename: str) -> tuple[int, int, int]:
    if size is None:
        return 0, 0, 3
    width = _integer(size, "width", filename, "size", default=0)
    height = _integer(size, "height", filename, "size", default=0)
    depth = _integer(size, "depth", filename, "size", default=3)
    return width, height, depth


def _read_object(element: ET.Element, where: str, filename: str, width: int, height: int) -> VocObject:
    name = _text(element, "name", filename)
    if not name:
        raise VocError(filename, f"{where}: missing <name>")
    box = element.find("bndbox")
    if box is None:
        raise VocError(filename, f"{where} ({name}): missing <bndbox>")
    xmin, ymin, xmax, ymax = (_number(box, tag, filename, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
    if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
        raise VocError(
            filename,
            f"{where} ({name}): box ({xmin}, {ymin}, {xmax}, {ymax}) is empty or outside the {width}x{height} image",
        )
    return VocObject(
        name=name,
        xmin=xmin,
        ymin=ymin,
        xmax=xmax,
        ymax=ymax,
        difficult=_flag(element, "difficult", filename, where),
        truncated=_flag(element, "truncated", filename, where),
        pose=_text(element, "pose", filename) or "Unspecified",
    )


def _text(parent: ET.Element, tag: str, filename: str) -> str:
    text = (parent.findtext(tag) or "").strip()
    if len(text) > _MAX_TEXT_CHARS:
        raise VocError(filename, f"<{tag}> is longer than {_MAX_TEXT_CHARS} characters")
    return text


def _number(parent: ET.Element, tag: str, filename: str, where: str) -> Number:
    text = _text(parent, tag, filename)
    try:
        value = float(text)
    except ValueError:
        raise VocError(filename, f"{where}: <{tag}> is not a number ({text!r})") from None
    if not math.isfinite(value):
        raise VocError(filename, f"{where}: <{tag}> is not a finite number ({text!r})")
    # Integral coordinates stay ints so that writing them back gives the same text.
    return int(value) if value.is_integer() else value


def _integer(parent: ET.Element, tag: str, filename: str, where: str, default: int) -> int:
    if parent.find(tag) is None or not _text(parent, tag, filename):
        return default
    value = _number(parent, tag, filename, where)
    if not isinstance(value, int) or value < 0:
        raise VocError(filename, f"{where}: <{tag}> must be a non-negative integer")
    return value


def _flag(parent: ET.Element, tag: str, filename: str, where: str) -> bool:
    text = _text(parent, tag, filename)
    if text in ("", "0", "false", "False"):
        return False
    if text in ("1", "true", "True"):
        return True
    raise VocError(filename, f"{where}: <{tag}> must be 0 or 1, not {text!r}")


# ------------------------------------------------------------------------------------------- writing


def write_voc(annotation: VocAnnotation) -> bytes:
    """Serialise an annotation as VOC XML (UTF-8); ``parse_voc`` gives back an equal annotation."""
    root = ET.Element("annotation")
    _sub(root, "folder", annotation.folder)
    _sub(root, "filename", annotation.filename)
    size = ET.SubElement(root, "size")
    _sub(size, "width", annotation.width)
    _sub(size, "height", annotation.height)
    _sub(size, "depth", annotation.depth)
    _sub(root, "segmented", int(annotation.segmented))
    for obj in annotation.objects:
        element = ET.SubElement(root, "object")
        _sub(element, "name", obj.name)
        _sub(element, "pose", obj.pose)
        _sub(element, "truncated", int(obj.truncated))
        _sub(element, "difficult", int(obj.difficult))
        box = ET.SubElement(element, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            _sub(box, tag, getattr(obj, tag))
    ET.indent(root, space="\t")
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return xml + b"\n"


def _sub(parent: ET.Element, tag: str, value: object) -> None:
    # repr() of a float is the shortest text that reads back as the same float.
    ET.SubElement(parent, tag).text = repr(value) if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class Pairing:
    """Images matched with annotation files by file name without extension (``dogs.jpg``/``dogs.xml``)."""

    pairs: dict[str, str] = field(default_factory=dict)  # image name -> xml name
    images_without_xml: list[str] = field(default_factory=list)
    xml_without_image: list[str] = field(default_factory=list)


def pair_by_stem(image_names: Iterable[str], xml_names: Iterable[str]) -> Pairing:
    """Match uploads the way 000's detection upload does; two files with one stem are ambiguous."""
    images = _index_by_stem(image_names, "image")
    xmls = _index_by_stem(xml_names, "annotation")
    return Pairing(
        pairs={image: xmls[stem] for stem, image in images.items() if stem in xmls},
        images_without_xml=[image for stem, image in images.items() if stem not in xmls],
        xml_without_image=[xml for stem, xml in xmls.items() if stem not in images],
    )


def _index_by_stem(names: Iterable[str], what: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for name in names:
        stem = stem_of(name)
        if stem in index:
            raise VocError(name, f"same name as {what} {index[stem]!r} apart from the extension")
        index[stem] = name
    return index
