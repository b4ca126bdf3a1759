"""PDF -> Arrow: the text layer via pypdf; pages without one are OCR'd with Tesseract.

A page counts as "no text layer" when pypdf extracts fewer than `MIN_TEXT_CHARS`
non-space characters (scans often carry a stray page number or a watermark). Such a
page is rendered by poppler's `pdftoppm` and read by `tesseract` (Debian packages
`poppler-utils` and `tesseract-ocr`; Python wrapper `pytesseract`).

Rendering resolution: `OCR_DPI` = 200. Measured on the image-only resumes in
`shared/data/resumes` (scans embedded at ~65 ppi): 200 dpi read them as well as or
better than 300 dpi, in a quarter of the time.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lakehouse.config import IngestConfig
from lakehouse.errors import InvalidInput
from lakehouse.ingest.common import check_file_size, check_text_length

# pypdf logs a warning for every defect it repairs in a broken file; the refusal
# reason (or the parsed text) is what an operator needs, not a flood of warnings
logging.getLogger("pypdf").setLevel(logging.ERROR)

MIN_TEXT_CHARS = 16
OCR_DPI = 200
#: longest rendered side in pixels: a poster-sized page is scaled down, not rendered to gigabytes
MAX_RENDER_PIXELS = 10_000
OCR_TIMEOUT_SECONDS = 180
OCR_PACKAGES = "Debian packages tesseract-ocr and poppler-utils"

DOCUMENT_SCHEMA = pa.schema([
    ("file_name", pa.string()), ("page_count", pa.int32()), ("extraction_method", pa.string()),
    ("text", pa.string()), ("content_hash", pa.string()),
])
PAGE_SCHEMA = pa.schema([
    ("file_name", pa.string()), ("page_number", pa.int32()), ("page_count", pa.int32()),
    ("extraction_method", pa.string()), ("text", pa.string()), ("content_hash", pa.string()),
])


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based, as a reader counts
    method: str  # text | ocr
    text: str


def read_pdf(path: Path, limits: IngestConfig | None = None, *, per_page: bool = False) -> pa.Table:
    """One row for the document (or one per page with `per_page`)."""
    limits = limits or IngestConfig()
    check_file_size(path, limits)
    data = path.read_bytes()
    content_hash = hashlib.sha256(data).hexdigest()
    pages = [_page_text(path, data, number, page) for number, page in enumerate(_pages(path, data), start=1)]
    if per_page:
        return _page_rows(path, pages, content_hash, limits)
    return _document_row(path, pages, content_hash, limits)


def _document_row(path: Path, pages: list[PageText], content_hash: str, limits: IngestConfig) -> pa.Table:
    text = "\n\n".join(page.text for page in pages)
    check_text_length(path.name, "text", len(text), limits)
    methods = {page.method for page in pages}
    method = methods.pop() if len(methods) == 1 else "mixed"
    return pa.Table.from_pylist(
        [{"file_name": path.name, "page_count": len(pages), "extraction_method": method, "text": text, "content_hash": content_hash}],
        schema=DOCUMENT_SCHEMA,
    )


def _page_rows(path: Path, pages: list[PageText], content_hash: str, limits: IngestConfig) -> pa.Table:
    for page in pages:
        check_text_length(path.name, "text", len(page.text), limits)
    rows = [
        {"file_name": path.name, "page_number": page.number, "page_count": len(pages), "extraction_method": page.method,
         "text": page.text, "content_hash": content_hash}
        for page in pages
    ]
    return pa.Table.from_pylist(rows, schema=PAGE_SCHEMA)


# ---------------------------------------------------------------- pypdf


def _pages(path: Path, data: bytes) -> list:
    from pypdf import PdfReader  # imported here: CSV-only deployments never pay for it

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidInput(f"{path.name} is an encrypted PDF; ingest an unprotected copy")
        pages = list(reader.pages)
    except InvalidInput:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, ValueError, KeyError...) on broken files
        raise InvalidInput(f"{path.name} is not a readable PDF: {type(exc).__name__}: {exc}") from exc
    if not pages:
        raise InvalidInput(f"{path.name} has no pages: nothing to ingest")
    return pages


def _page_text(path: Path, data: bytes, number: int, page) -> PageText:
    try:
        text = page.extract_text() or ""
    except Exception:  # a broken content stream on one page: OCR can still read what is drawn
        text = ""
    if len("".join(text.split())) >= MIN_TEXT_CHARS:
        return PageText(number, "text", text)
    return PageText(number, "ocr", _ocr_page(path, data, number, _render_dpi(page)))


def _render_dpi(page) -> int:
    try:
        longest_inches = max(float(page.mediabox.width), float(page.mediabox.height)) / 72
    except Exception:
        return OCR_DPI
    return max(36, min(OCR_DPI, int(MAX_RENDER_PIXELS / max(longest_inches, 1e-3))))


# ---------------------------------------------------------------- OCR


def _ocr_page(path: Path, data: bytes, number: int, dpi: int) -> str:
    import pytesseract
    from PIL import Image

    _require_tools(path)
    # Tesseract's OpenMP threads fight each other on small pages: one thread was 8x
    # faster here (2.9 s vs 24 s for a 300 dpi page on 2 cores)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    image_bytes = _render_page(path, data, number, dpi)
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            return pytesseract.image_to_string(image, timeout=OCR_TIMEOUT_SECONDS)
    except RuntimeError as exc:  # pytesseract's timeout
        raise InvalidInput(f"{path.name}: OCR of page {number} took longer than {OCR_TIMEOUT_SECONDS} s") from exc
    except (pytesseract.TesseractError, OSError) as exc:
        raise InvalidInput(f"{path.name}: OCR of page {number} failed: {exc}") from exc


def _render_page(path: Path, data: bytes, number: int, dpi: int) -> bytes:
    """Page `number` as a grayscale PNG, piped (no temporary file to clean up)."""
    command = ["pdftoppm", "-f", str(number), "-l", str(number), "-r", str(dpi), "-gray", "-png", "-singlefile", "-"]  # PDF on stdin, PNG on stdout
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=OCR_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(f"{path.name}: rendering page {number} for OCR took longer than {OCR_TIMEOUT_SECONDS} s") from exc
    if done.returncode != 0 or not done.stdout:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no image produced"]
        raise InvalidInput(f"{path.name}: page {number} has no text layer and could not be rendered for OCR: {reason[0]}")
    return done.stdout


def _require_tools(path: Path) -> None:
    missing = [tool for tool in ("pdftoppm", "tesseract") if shutil.which(tool) is None]
    if missing:
        raise InvalidInput(
            f"{path.name} needs OCR (a page has no text layer) but {', '.join(missing)} is not installed "
            f"(install the {OCR_PACKAGES})"
        )
