import pytest

from services.dataset.ingest import IngestError
from services.dataset.labels import (
    LabelError,
    LabelType,
    StatusKind,
    TableRow,
    UploadStatus,
    iter_label_lines,
    merge_labels,
    parse_label,
    parse_label_file,
    parse_label_types,
    parse_mapping_table,
    parse_upload_status,
    resolve_label,
)

CAT, DOG, PANDA = LabelType(1, "cat"), LabelType(2, "dog"), LabelType(3, "panda")


@pytest.mark.parametrize(
    "text",
    [
        "1:cat,2:dog,3:panda",
        "1：cat，2：dog，3：panda",
        " 1 : cat , 2:dog ;3:panda ",
        "1:cat\n2:dog\n3:panda\n",
        "1:cat,,2:dog,3:panda,",
    ],
)
def test_parse_label_types(text: str) -> None:
    assert parse_label_types(text) == [CAT, DOG, PANDA]


def test_single_label_with_full_width_colon() -> None:
    assert parse_label_types("1：cat") == [CAT]  # the document's own single-label example


def test_label_names_keep_spaces_and_unicode() -> None:
    assert parse_label_types("1:hot dog,2:熊猫") == [LabelType(1, "hot dog"), LabelType(2, "熊猫")]


def test_bare_names_numbered_after_explicit_ids() -> None:
    assert parse_label_types("cat,dog") == [CAT, DOG]
    assert parse_label_types("5:cat,dog") == [LabelType(5, "cat"), LabelType(6, "dog")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1:cat,1:dog", "id 1"),
        ("1:cat,2:cat", "twice"),
        ("", "no labels"),
        (" , ", "no labels"),
        ("1:", "without ':'"),
        ("1:a:b", "without ':'"),
        ("1:" + "x" * 65, "longer than"),
        ("1:ca\x07t", "control"),
    ],
)
def test_bad_label_types(text: str, reason: str) -> None:
    with pytest.raises(LabelError, match=reason) as excinfo:
        parse_label_types(text)
    assert isinstance(excinfo.value, IngestError)
    assert excinfo.value.filename == "label_type"


def test_label_file_formats() -> None:
    text = "# labels\n1:cat\n2 dog\n\n3\tpanda\r\n"
    assert parse_label_file(text.encode()) == [CAT, DOG, PANDA]
    assert parse_label_file(b"cat\ndog\npanda\n") == [CAT, DOG, PANDA]
    assert parse_label_file("\ufeff1：猫\n2：狗\n".encode()) == [LabelType(1, "猫"), LabelType(2, "狗")]
    assert parse_label_file("1:猫\n2:狗\n".encode("gbk")) == [LabelType(1, "猫"), LabelType(2, "狗")]


def test_label_file_prototxt() -> None:
    prototxt = b"""
item {
  name: "none_of_the_above"
  label: 0
  display_name: "background"
}
item {
  name: "cat"
  label: 1
}
item { name: "dog" label: 2 display_name: "dog" }
"""
    assert parse_label_file(prototxt, "xy.prototxt") == [LabelType(0, "background"), CAT, DOG]


def test_label_file_errors_name_the_file_and_line() -> None:
    with pytest.raises(LabelError, match="line 3") as excinfo:
        parse_label_file(b"1:cat\n2:dog\n2:panda\n", "labels.txt")
    assert excinfo.value.filename == "labels.txt"
    with pytest.raises(IngestError):
        parse_label_file(b"\x00\x01\x02binary", "labels.txt")


def test_parse_label() -> None:
    assert parse_label("1:cat") == CAT
    assert parse_label(" 2： dog ") == DOG
    for bad in ("cat", "1", ":cat", "1:"):
        with pytest.raises(LabelError):
            parse_label(bad)


def test_merge_labels() -> None:
    assert merge_labels([CAT], [CAT, DOG]) == [CAT, DOG]
    with pytest.raises(LabelError):
        merge_labels([CAT], [LabelType(1, "tiger")])
    with pytest.raises(LabelError):
        merge_labels([CAT], [LabelType(9, "cat")])


def test_resolve_label() -> None:
    labels = [CAT, DOG, LabelType(3, "7")]
    assert resolve_label("2:dog", labels) == DOG
    assert resolve_label("dog", labels) == DOG
    assert resolve_label("1", labels) == CAT
    assert resolve_label("7", labels) == LabelType(3, "7")  # a name wins over an id
    assert resolve_label("2：dog", labels) == DOG
    for unknown in ("3:dog", "tiger", "9"):
        with pytest.raises(LabelError, match="unknown label"):
            resolve_label(unknown, labels)


def test_mapping_table_separators() -> None:
    table = "\n".join(
        [
            "file_name,label",
            "a.jpg dog",
            "b.png,cat",
            "c.jpeg:1:cat",
            "d e.jpg\t2:dog",
            "C:\\Users\\me\\Desktop\\f.JPG   panda",
            "g.jpg，狗",
            "h.jpg：猫",
            "# a comment",
            "noextension;dog",
            "",
        ]
    )
    rows = parse_mapping_table(table.encode(), "image_list.txt")
    assert [(row.file_name, row.value) for row in rows] == [
        ("a.jpg", "dog"),
        ("b.png", "cat"),
        ("c.jpeg", "1:cat"),
        ("d e.jpg", "2:dog"),
        ("f.JPG", "panda"),
        ("g.jpg", "狗"),
        ("h.jpg", "猫"),
        ("noextension", "dog"),
    ]
    assert rows[0] == TableRow("a.jpg", "dog", 2)


def test_mapping_table_for_detection_names_xml() -> None:
    rows = parse_mapping_table(b"dogs.jpg dogs.xml\ncats.jpg cats.xml\n")
    assert [(row.file_name, row.value) for row in rows] == [("dogs.jpg", "dogs.xml"), ("cats.jpg", "cats.xml")]


def test_mapping_table_errors() -> None:
    with pytest.raises(LabelError, match="line 2"):
        parse_mapping_table(b"a.jpg dog\na.jpg cat\n", "t.txt")
    assert len(parse_mapping_table(b"a.jpg dog\na.jpg dog\n")) == 1  # a repeated identical line is harmless
    with pytest.raises(LabelError, match="line 1"):
        parse_mapping_table(b"lonely\n")
    with pytest.raises(LabelError, match="no rows"):
        parse_mapping_table(b"\n# only a comment\n")


def test_mapping_table_names_are_sanitised_like_uploads() -> None:
    rows = parse_mapping_table(b"../../evil.jpg dog\n")
    assert rows[0].file_name == "evil.jpg"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("add_label", UploadStatus(StatusKind.ADD_LABEL)),
        ("appoint_table", UploadStatus(StatusKind.APPOINT_TABLE)),
        (" Default ", UploadStatus(StatusKind.DEFAULT)),
        ("1:dog", UploadStatus(StatusKind.LABEL, LabelType(1, "dog"))),
        ("3：熊猫", UploadStatus(StatusKind.LABEL, LabelType(3, "熊猫"))),
        (None, UploadStatus(StatusKind.NONE)),
        ("", UploadStatus(StatusKind.NONE)),
    ],
)
def test_upload_status(value: str | None, expected: UploadStatus) -> None:
    assert parse_upload_status(value) == expected


@pytest.mark.parametrize("value", ["dog", "add", "1", "1:"])
def test_bad_upload_status(value: str) -> None:
    with pytest.raises(LabelError) as excinfo:
        parse_upload_status(value)
    assert excinfo.value.filename == "status"


def test_label_lines_round_trip() -> None:
    labels = [CAT, DOG, LabelType(10, "熊猫")]
    assert parse_label_file("".join(iter_label_lines(labels))) == labels
