"""What Relais accepts as a file: names, types by extension, and contents checked against the type.

Pure functions, no database and no disk: :mod:`relais.files` applies them before it stores a byte
(name, type) and before it makes a file visible (content).
"""

from __future__ import annotations

import unicodedata

from relais.i18n import N_
from relais.refusal import Refused

# Extension -> media type we serve it as. The client's claimed type is never trusted.
ALLOWED = {
    "csv": "text/csv", "tsv": "text/tab-separated-values", "txt": "text/plain", "json": "application/json",
    "xml": "application/xml", "pdf": "application/pdf", "zip": "application/zip", "gz": "application/gzip",
    "7z": "application/x-7z-compressed", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel", "doc": "application/msword",
    "ods": "application/vnd.oasis.opendocument.spreadsheet", "odt": "application/vnd.oasis.opendocument.text",
    "parquet": "application/vnd.apache.parquet", "sas7bdat": "application/x-sas-data",
    "sav": "application/x-spss-sav", "dta": "application/x-stata-dta", "png": "image/png", "jpg": "image/jpeg",
    "jpeg": "image/jpeg", "tif": "image/tiff", "tiff": "image/tiff", "dcm": "application/dicom",
    "gpg": "application/pgp-encrypted", "pgp": "application/pgp-encrypted", "asc": "application/pgp-encrypted",
}
TEXT = {"csv", "tsv", "txt", "json", "xml", "asc"}
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
# Where a format has a fixed start, the content must have it: an executable renamed .pdf is refused.
SIGNATURES = {
    "pdf": (b"%PDF-",), "png": (b"\x89PNG\r\n\x1a\n",), "jpg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",),
    "gz": (b"\x1f\x8b",), "7z": (b"7z\xbc\xaf\x27\x1c",), "zip": _ZIP, "xlsx": _ZIP, "docx": _ZIP, "ods": _ZIP,
    "odt": _ZIP, "xls": _OLE, "doc": _OLE, "parquet": (b"PAR1",), "tif": (b"II*\x00", b"MM\x00*"),
    "tiff": (b"II*\x00", b"MM\x00*"),
}
# Windows PE (MZ), ELF, scripts (#!), Mach-O 32/64-bit both byte orders and universal binaries.
EXECUTABLES = (b"MZ", b"\x7fELF", b"#!", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
               b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$", *(f"com{i}" for i in "123456789¹²³"),
             *(f"lpt{i}" for i in "123456789¹²³")}
_FORBIDDEN = set('/\\<>:"|?*')

# reason -> message shown to the person (translated where it is shown)
REASONS = {
    "empty_name": N_("The file has no name."),
    "name_too_long": N_("File names are at most 255 bytes long in UTF-8: a letter with an accent counts as 2, many other characters as 3 or 4."),
    "bad_characters": N_("File names cannot contain / \\ < > : \" | ? * or invisible control characters."),
    "reserved_name": N_("This file name is reserved by Windows (CON, PRN, AUX, NUL, COM1, LPT1...). Rename the file."),
    "extension": N_("This type of file is not accepted. Accepted: %(extensions)s."),
    "content": N_("The content of this file does not match its type (an executable, or not really what its name says)."),
    "empty_file": N_("The file is empty."),
    "too_large": N_("The file is larger than the limit of %(limit)s."),
    "too_many": N_("You have reached the limit of %(limit)s files. Delete some first."),
    "incomplete": N_("The upload stopped before the whole file arrived. Nothing was kept; please try again."),
    # A request's link (relais.requests): its own limits, in the guest's words
    "request_closed": N_("This link no longer accepts files. Nothing of this file was kept."),
    "request_too_many": N_("This request takes at most %(limit)s files at a time. Remove one first, or transmit these."),
}


class FileRefused(Refused):
    """A file, or its name, breaks a rule; ``reason`` is a key of REASONS."""


def clean_name(raw: str) -> str:
    """The name as it will be shown, or FileRefused. Never used as a path: data files have random names."""
    name = unicodedata.normalize("NFC", raw or "").strip()
    if not name or set(name) <= {"."}:
        raise FileRefused("empty_name")
    # A downloaded file lands on a disk, and the name is shown by shell tools: a leading "-" is
    # read as an option ("rm -rf.csv"), a leading "." hides the file (".bashrc.csv" is not listed
    # by ls or a file manager). A "_" in front keeps the name readable and makes it harmless.
    if name.startswith(("-", ".")):
        name = "_" + name
    # Cc: control characters; Cf: format characters, among them the bidi overrides that make
    # "evil\u202Etxt.exe" display as "evilexe.txt"; Zl/Zp: line breaks; Cs/Co: not real text.
    if any(c in _FORBIDDEN or unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"} for c in name):
        raise FileRefused("bad_characters")
    if name.endswith((".", " ")):  # Windows drops these silently, so "a.csv." would open as "a.csv"
        raise FileRefused("bad_characters")
    # ext4 and most Unix file systems limit a name to 255 bytes, not characters, so "é" counts twice:
    # a longer name could not be saved under its own name where it is downloaded.
    if len(name.encode("utf-8")) > 255:
        raise FileRefused("name_too_long")
    if name.split(".")[0].rstrip(" ").lower() in _RESERVED:
        raise FileRefused("reserved_name")
    return name


def extension(name: str) -> str:
    return name.rsplit(".", 1)[1].lower() if "." in name.lstrip(".") else ""


def check_type(name: str) -> str:
    """The media type for an accepted extension, or FileRefused."""
    ext = extension(name)
    if ext not in ALLOWED:
        raise FileRefused("extension", extensions=", ".join(sorted(ALLOWED)))
    return ALLOWED[ext]


def check_content(name: str, head: bytes) -> None:
    """Refuse an executable whatever its name, and content that is not what the extension says."""
    ext = extension(name)
    if head.startswith(EXECUTABLES):
        raise FileRefused("content")
    if ext in SIGNATURES and not head.startswith(SIGNATURES[ext]):
        raise FileRefused("content")
    if ext == "dcm" and head[128:132] != b"DICM":
        raise FileRefused("content")
    if ext in TEXT and b"\0" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRefused("content")  # binary data named .csv or .txt (UTF-16 with a BOM has NULs)
