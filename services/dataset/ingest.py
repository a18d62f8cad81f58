"""Safety checks for untrusted uploads: file names, images, zip archives and 003's numbered-file rule.

Every refusal raises an ``IngestError`` subclass carrying the offending file name and a reason, so the web
layer can answer a 4xx that says which file was refused and why.
"""

from __future__ import annotations

import codecs
import io
import os
import stat
import unicodedata
import zipfile
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, BinaryIO, NamedTuple

from shared.images import IMAGE_FORMATS, ImageRefused, ImageSource, TooManyPixels, open_image

# --------------------------------------------------------------------------------------------- errors


class IngestError(ValueError):
    """An upload was refused. ``filename`` names the file (or form field), ``reason`` says why."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


class UnsafeName(IngestError):
    """A name that could escape its directory or is not a usable file name."""


class TooLarge(IngestError):
    """A size, pixel-count or entry-count cap was exceeded."""


class UnsupportedEntry(IngestError):
    """An archive member we refuse to expand: symlink, encrypted, exotic compression, duplicate."""


class CorruptArchive(IngestError):
    """The archive is not a readable zip, or a member's data does not match its header."""


class ImageRejected(IngestError):
    """Not an image, an unsupported format, or truncated/corrupt image data."""


class DecompressionBomb(ImageRejected, TooLarge):
    """An image whose dimensions exceed the pixel cap (usually a tiny file claiming huge dimensions)."""


class BadText(IngestError):
    """Text that is not in an accepted encoding."""


class BadDataType(IngestError):
    """003's ``data_type`` is neither ``text`` nor ``image``."""


# ---------------------------------------------------------------------------------------- file names

MAX_NAME_BYTES = 255  # the usual per-component limit of Linux, macOS and Windows file systems
_MAX_EXTENSION_CHARS = 16
_WINDOWS_RESERVED_CHARS = set('<>:"/\\|?*')
_WINDOWS_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}


def sanitize_filename(name: str, max_bytes: int = MAX_NAME_BYTES, default: str = "file") -> str:
    """A safe single-component file name derived from a client-supplied one.

    Keeps the base name only (whatever the client's path separator), drops control and format characters
    (including bidi overrides that disguise extensions), leading dots (hidden files, ``..``) and characters
    Windows refuses, and truncates the stem, not the extension, to ``max_bytes`` of UTF-8.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if ch in _WINDOWS_RESERVED_CHARS else ch for ch in name if not unicodedata.category(ch).startswith("C")
    )
    name = name.strip().lstrip(".").rstrip(". ")
    if not name:
        return default
    stem, ext = _split_extension(name)
    if not stem:
        stem = default
    if stem.split(".")[0].upper() in _WINDOWS_DEVICE_NAMES:
        stem = "_" + stem
    # Truncation can expose a trailing dot or space again, which Windows would silently drop.
    return (_truncate_utf8(stem, max_bytes - len(ext.encode())).rstrip(". ") or "_") + ext


def _split_extension(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    if len(ext) > _MAX_EXTENSION_CHARS or not ext[1:].replace("_", "").replace("-", "").isalnum():
        return name, ""  # not a real extension: keep it as part of the stem
    return stem, ext


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(max_bytes, 1)].decode(errors="ignore") or "_"


def extension_of(name: str) -> str:
    """Lower-case extension with its dot (``"a.JPG"`` -> ``".jpg"``), ``""`` when there is none."""
    return os.path.splitext(name)[1].lower()


def stem_of(name: str) -> str:
    return os.path.splitext(os.path.basename(name))[0]


# --------------------------------------------------------------------------------------------- text


def decode_text(data: bytes, filename: str, encodings: Iterable[str] = ("utf-8",)) -> str:
    """Decode uploaded text, trying ``encodings`` in order; a UTF-8 byte-order mark is dropped."""
    encodings = tuple(encodings)
    for encoding in encodings:
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break  # NULs mean a binary file (or UTF-16), whatever decoded without error
        return text
    raise BadText(filename, f"not a text file in {' or '.join(encodings)}")


# -------------------------------------------------------------------------------------------- images

DEFAULT_MAX_PIXELS = 50_000_000  # the default of the service's setting; below Pillow's own ~89 Mpx


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's format name: "JPEG", "PNG", ...
    width: int
    height: int
    mode: str

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.format][0] if self.format in IMAGE_FORMATS else "." + self.format.lower()

    @property
    def media_type(self) -> str:
        return IMAGE_FORMATS[self.format][1] if self.format in IMAGE_FORMATS else "application/octet-stream"


def check_image(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    filename: str | None = None,
    formats: Iterable[str] = IMAGE_FORMATS,
) -> ImageInfo:
    """Fully decode an image and describe it, or raise ``ImageRejected``/``DecompressionBomb``.

    The policy (formats, the pixel cap checked from the header, a full decode) is ``shared.images``'. The
    file is kept as sent, so its dimensions are as stored, before any EXIF orientation: what annotation
    files written against the stored file (VOC's ``<size>``) state.
    """
    name = filename or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "image")
    try:
        with open_image(source, max_pixels=max_pixels, formats=formats) as image:
            # MPO is how Pillow names multi-picture JPEGs from phone cameras: a JPEG for everyone else.
            image_format = "JPEG" if image.format == "MPO" else str(image.format)
            return ImageInfo(image_format, image.width, image.height, image.mode)
    except TooManyPixels as exc:
        raise DecompressionBomb(name, str(exc)) from None
    except ImageRefused as exc:
        raise ImageRejected(name, str(exc)) from None


# ---------------------------------------------------------------------------------------------- zips

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_TOTAL_UNCOMPRESSED = 2 * 1024**3
DEFAULT_MAX_MEMBER_SIZE = 256 * 1024**2
_READ_CHUNK = 64 * 1024
# A central directory entry is 46 bytes plus its name and extra fields: real archives stay far below this.
_DIRECTORY_BYTES_PER_ENTRY = 512
# Stored and deflated only: zipfile hands bzip2/lzma a whole compressed block with no output limit, so a
# small bzip2 member can expand to gigabytes in memory before any counting could stop it.
_SAFE_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
# Archivers' metadata, not user files: macOS resource forks and folder settings of Finder and Explorer.
_JUNK_DIRS = {"__MACOSX"}
_JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def safe_member_name(name: str) -> str:
    """Validate an archive member name and return it as a normalised relative POSIX path.

    Refuses anything that could land outside the extraction directory once some tool extracts it:
    absolute paths, ``..``, backslashes (a separator on Windows), drive letters, NUL and control characters.
    """
    if not name or "\\" in name or any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UnsafeName(name or "(empty)", "unsafe name in archive")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeName(name, "absolute path in archive")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if not parts or ".." in parts or any(":" in part for part in parts):
        raise UnsafeName(name, "path escapes the archive's root")
    return "/".join(parts)


class _CappedReader(io.RawIOBase):
    """Reads a zip member, counting the bytes really produced against the member and archive caps.

    The counts come from the decompressed output, never from the headers, so a member whose header
    understates its size is stopped at the cap rather than trusted.
    """

    def __init__(self, raw: IO[bytes], name: str, member_cap: int, budget: _Budget) -> None:
        self._raw = raw
        self._name = name
        self._member_cap = member_cap
        self._budget = budget
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # Ask for one byte more than the caps allow, so that exceeding them is seen, not truncated away.
        allowed = min(self._member_cap - self.bytes_read, self._budget.remaining) + 1
        try:
            data = self._raw.read(min(len(buffer), allowed))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise CorruptArchive(self._name, f"corrupt member data ({exc})") from None
        self.bytes_read += len(data)
        self._budget.spend(len(data), self._name)
        if self.bytes_read > self._member_cap:
            raise TooLarge(self._name, f"expands to more than {self._member_cap} bytes")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass
class _Budget:
    total_cap: int
    spent: int = 0

    @property
    def remaining(self) -> int:
        return max(self.total_cap - self.spent, 0)

    def spend(self, count: int, name: str) -> None:
        self.spent += count
        if self.spent > self.total_cap:
            raise TooLarge(name, f"archive expands to more than {self.total_cap} bytes in total")


class ZipMember(NamedTuple):
    """``(name, reader)``: a validated relative POSIX path, and a capped reader valid until the
    iteration moves on to the next member."""

    name: str
    reader: BinaryIO


def iter_zip_members(
    source: str | os.PathLike[str] | BinaryIO,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_total_uncompressed: int = DEFAULT_MAX_TOTAL_UNCOMPRESSED,
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE,
    *,
    archive_name: str = "archive.zip",
    skip_junk: bool = True,
) -> Generator[ZipMember, None, None]:
    """Yield the regular files of a zip archive, each with a size-capped reader.

    The whole central directory is vetted before the first member is yielded, so a refused archive
    yields nothing. Directories are skipped; archives inside the archive are yielded as plain files,
    never expanded. Each reader must be consumed before asking for the next member.
    """
    with _open_zip(source, archive_name, max_entries) as archive:
        members = _vet_members(archive, archive_name, max_entries, max_total_uncompressed, max_member_size, skip_junk)
        budget = _Budget(max_total_uncompressed)
        for info, name in members:
            try:
                raw = archive.open(info)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
                raise CorruptArchive(name, f"cannot read member ({exc})") from None
            with _CappedReader(raw, name, max_member_size, budget) as reader:
                buffered = io.BufferedReader(reader, buffer_size=_READ_CHUNK)
                yield ZipMember(name, buffered)


def _open_zip(source: str | os.PathLike[str] | BinaryIO, archive_name: str, max_entries: int) -> zipfile.ZipFile:
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fp:
                _check_directory_size(fp, archive_name, max_entries)
        else:
            _check_directory_size(source, archive_name, max_entries)
        return zipfile.ZipFile(source)
    except (IngestError, FileNotFoundError):  # IngestError is a ValueError: keep it from the clause below
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise CorruptArchive(archive_name, f"not a readable zip archive ({exc})") from None


def _check_directory_size(fp: BinaryIO, archive_name: str, max_entries: int) -> None:
    # ZipFile() turns the whole central directory into ZipInfo objects before anyone can count them, so
    # a small upload of millions of tiny entries costs gigabytes. The directory's size in the end record
    # is exactly what ZipFile will read (the entry count there is not: ZipFile ignores it), so bound that.
    # _EndRecData is private but has been stable since Python 2 and also reads ZIP64 end records.
    end_record = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
    if end_record is None:
        raise CorruptArchive(archive_name, "not a zip archive (no end of central directory record)")
    directory_size = end_record[5]  # zipfile._ECD_SIZE
    if directory_size > max_entries * _DIRECTORY_BYTES_PER_ENTRY:
        raise TooLarge(
            archive_name, f"central directory of {directory_size} bytes is too large for at most {max_entries} entries"
        )


def _vet_members(
    archive: zipfile.ZipFile,
    archive_name: str,
    max_entries: int,
    max_total: int,
    max_member: int,
    skip_junk: bool,
) -> list[tuple[zipfile.ZipInfo, str]]:
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise TooLarge(archive_name, f"{len(infos)} entries, more than the limit of {max_entries}")
    members: list[tuple[zipfile.ZipInfo, str]] = []
    seen: set[str] = set()
    declared_total = 0
    for info in infos:
        name = safe_member_name(info.filename)
        if info.is_dir() or (skip_junk and _is_junk(name)):
            continue
        if name in seen:
            # Tools disagree on which duplicate wins; refusing keeps what we check what gets used.
            raise UnsupportedEntry(name, "duplicate name in archive")
        seen.add(name)
        _vet_member(info, name, max_member)
        declared_total += info.file_size
        if declared_total > max_total:
            raise TooLarge(archive_name, f"archive declares more than {max_total} bytes in total")
        members.append((info, name))
    return members


def _vet_member(info: zipfile.ZipInfo, name: str, max_member: int) -> None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsupportedEntry(name, "symbolic links are not accepted")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: made on a system without Unix modes
        raise UnsupportedEntry(name, "not a regular file")
    if info.flag_bits & 0x1:
        raise UnsupportedEntry(name, "encrypted entries are not accepted")
    if info.compress_type not in _SAFE_COMPRESSION:
        raise UnsupportedEntry(name, f"unsupported compression method {info.compress_type}")
    if info.file_size > max_member:
        raise TooLarge(name, f"declares {info.file_size} bytes, more than the limit of {max_member}")


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return parts[0] in _JUNK_DIRS or parts[-1] in _JUNK_FILES or parts[-1].startswith("._")


# ------------------------------------------------------------------------------ 003 numbered files

SEQUENCE_EXTENSIONS: dict[str, str] = {"text": ".txt", "image": ".jpg"}


@dataclass(frozen=True)
class SequenceCheck:
    """Outcome of 003's rule for ``POST /task/upload_data``: files ``1.ext`` .. ``N.ext``, no gaps.

    ``legal`` lists the names of the unbroken run ``1..legal_num`` in order; those are the files to keep and
    list in the answer. ``upload_num``/``legal_num`` are code 20's counts. ``wrong_type`` holds names with
    another extension than ``data_type`` asks for (code 32, "data type error").
    """

    upload_num: int
    legal_num: int
    legal: list[str]
    wrong_type: list[str]

    @property
    def interrupted(self) -> bool:
        return self.legal_num < self.upload_num

    @property
    def ok(self) -> bool:
        return not self.wrong_type and not self.interrupted


def check_sequence(names: Iterable[str], kind: str) -> SequenceCheck:
    """Apply the numbered-file rule to member names (directories inside the archive are ignored)."""
    extension = SEQUENCE_EXTENSIONS.get(kind)
    if extension is None:
        raise BadDataType("data_type", f"must be one of {', '.join(SEQUENCE_EXTENSIONS)}, not {kind!r}")
    all_names = list(names)
    numbered: dict[int, str] = {}
    wrong_type: list[str] = []
    for name in all_names:
        base = name.rsplit("/", 1)[-1]
        if extension_of(base) != extension:
            wrong_type.append(name)
            continue
        number = _sequence_number(stem_of(base))
        if number is not None:
            numbered.setdefault(number, name)  # a second "1.txt" in another folder is not legal
    legal: list[str] = []
    while len(legal) + 1 in numbered:
        legal.append(numbered[len(legal) + 1])
    return SequenceCheck(upload_num=len(all_names), legal_num=len(legal), legal=legal, wrong_type=wrong_type)


def _sequence_number(stem: str) -> int | None:
    # Canonical decimals only: "01" would make "01.txt" and "1.txt" the same question.
    if stem.isascii() and stem.isdigit() and not stem.startswith("0"):
        return int(stem)
    return None


def zip_names(
    source: str | os.PathLike[str] | BinaryIO,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_total_uncompressed: int = DEFAULT_MAX_TOTAL_UNCOMPRESSED,
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE,
    *,
    archive_name: str = "archive.zip",
    skip_junk: bool = True,
) -> list[str]:
    """The names ``iter_zip_members`` would yield, vetted the same way, without expanding anything.

    Lets a caller apply a rule to the whole listing (``check_sequence``) before storing any member.
    """
    with _open_zip(source, archive_name, max_entries) as archive:
        members = _vet_members(archive, archive_name, max_entries, max_total_uncompressed, max_member_size, skip_junk)
    return [name for _, name in members]
