import pytest

from services.dataset.ingest import IngestError
from services.dataset.voc import VocAnnotation, VocError, VocObject, pair_by_stem, parse_voc, write_voc

LABELIMG_XML = b"""<annotation>
\t<folder>cr</folder>
\t<filename>crazing_1.jpg</filename>
\t<source><database>NEU-DET</database></source>
\t<size><width>200</width><height>200</height><depth>1</depth></size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>crazing</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>193</xmax><ymax>194</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>patches</name><truncated>1</truncated><difficult>1</difficult>
\t\t<bndbox><xmin> 10.5</xmin><ymin>0</ymin><xmax>200</xmax><ymax>20.25</ymax></bndbox>
\t</object>
</annotation>
"""


def annotation(*boxes: tuple[float, float, float, float], name: str = "dog") -> bytes:
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>"
        for a, b, c, d in boxes
    )
    return (
        f"<annotation><filename>a.jpg</filename><size><width>100</width><height>50</height>"
        f"<depth>3</depth></size>{objects}</annotation>"
    ).encode()


def test_parse_labelimg_style() -> None:
    parsed = parse_voc(LABELIMG_XML, "crazing_1.xml")
    assert parsed == VocAnnotation(
        filename="crazing_1.jpg",
        width=200,
        height=200,
        depth=1,
        folder="cr",
        objects=(
            VocObject("crazing", 2, 2, 193, 194),
            VocObject("patches", 10.5, 0, 200, 20.25, difficult=True, truncated=True),
        ),
    )
    assert isinstance(parsed.objects[0].xmin, int)


def test_round_trip_is_exact() -> None:
    original = VocAnnotation(
        filename="图片 1.jpg",
        width=640,
        height=480,
        depth=3,
        folder="set & <1>",
        segmented=True,
        objects=(
            VocObject("cat", 1, 2, 300, 400),
            VocObject("dog & friend", 0.1, 2.5, 639.75, 480, difficult=True, truncated=True, pose="Left"),
        ),
    )
    xml = write_voc(original)
    assert parse_voc(xml) == original
    assert write_voc(parse_voc(xml)) == xml
    parsed = parse_voc(LABELIMG_XML)
    assert parse_voc(write_voc(parsed)) == parsed


def test_billion_laughs_rejected() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><filename>&lol9;</filename></annotation>"""
    with pytest.raises(VocError, match="forbidden") as excinfo:
        parse_voc(bomb, "laughs.xml")
    assert excinfo.value.filename == "laughs.xml"


def test_external_entity_rejected(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file://{secret}">]>
<annotation><filename>&xxe;</filename><size><width>10</width><height>10</height></size></annotation>"""
    with pytest.raises(VocError, match="forbidden"):
        parse_voc(xxe)
    doctype_only = b'<!DOCTYPE annotation SYSTEM "http://example.invalid/voc.dtd"><annotation/>'
    with pytest.raises(VocError):
        parse_voc(doctype_only)


def test_size_cap() -> None:
    with pytest.raises(VocError, match="larger than"):
        parse_voc(annotation((1, 1, 2, 2)) + b" " * 2000, max_bytes=1000)


@pytest.mark.parametrize(
    "box",
    [
        (10, 10, 5, 20),
        (10, 10, 10, 20),
        (-1, 0, 5, 5),
        (0, 0, 101, 50),
        (0, 0, 100, 51),
        (0, 0, "nan", 5),
        (0, 0, "inf", 5),
        ("ten", 0, 20, 5),
        (0, 0, "", 5),
    ],
)
def test_bad_bbox_rejected(box: tuple) -> None:
    with pytest.raises(VocError, match="object 1") as excinfo:
        parse_voc(annotation(box), "dogs.xml")
    assert isinstance(excinfo.value, IngestError)
    assert excinfo.value.filename == "dogs.xml"


def test_box_touching_edges_accepted() -> None:
    parsed = parse_voc(annotation((0, 0, 100, 50)))
    assert parsed.objects[0] == VocObject("dog", 0, 0, 100, 50)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (b"<annotation>", "malformed"),
        (b"<notvoc/>", "root element"),
        (b"<annotation><size><width>0</width><height>0</height></size></annotation>", "positive"),
        (b"<annotation><size><width>-5</width><height>5</height></size></annotation>", "non-negative"),
        (b"<annotation><size><width>1.5</width><height>5</height></size></annotation>", "integer"),
        (
            b"<annotation><size><width>5</width><height>5</height></size><object><bndbox><xmin>0</xmin>"
            b"</bndbox></object></annotation>",
            "missing <name>",
        ),
        (
            b"<annotation><size><width>5</width><height>5</height></size><object><name>a</name></object></annotation>",
            "missing <bndbox>",
        ),
        (
            b"<annotation><size><width>5</width><height>5</height></size><object><name>a</name>"
            b"<difficult>maybe</difficult><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>1</xmax><ymax>1</ymax>"
            b"</bndbox></object></annotation>",
            "0 or 1",
        ),
    ],
)
def test_invalid_documents(xml: bytes, reason: str) -> None:
    with pytest.raises(VocError, match=reason):
        parse_voc(xml)


def test_object_cap() -> None:
    with pytest.raises(VocError, match="objects"):
        parse_voc(annotation(*[(1, 1, 2, 2)] * 11), max_objects=10)


def test_image_size_from_the_image() -> None:
    no_size = (
        b"<annotation><filename>a.jpg</filename><object><name>a</name><bndbox><xmin>1</xmin>"
        b"<ymin>1</ymin><xmax>300</xmax><ymax>200</ymax></bndbox></object></annotation>"
    )
    assert parse_voc(no_size, image_size=(640, 480)).size == (640, 480)
    with pytest.raises(VocError, match="positive"):
        parse_voc(no_size)
    with pytest.raises(VocError, match="does not match"):
        parse_voc(annotation((1, 1, 2, 2)), image_size=(640, 480))
    assert parse_voc(annotation((1, 1, 2, 2)), image_size=(100, 50)).size == (100, 50)


def test_pair_by_stem() -> None:
    pairing = pair_by_stem(["dogs.jpg", "cats.png", "birds.jpg"], ["cats.xml", "dogs.xml", "fish.xml"])
    assert pairing.pairs == {"dogs.jpg": "dogs.xml", "cats.png": "cats.xml"}
    assert pairing.images_without_xml == ["birds.jpg"]
    assert pairing.xml_without_image == ["fish.xml"]
    with pytest.raises(VocError, match="apart from the extension"):
        pair_by_stem(["dogs.jpg", "dogs.png"], [])
