"""Receiving uploads: stream to disk under a size limit, and quarantine failures.

The multipart body is parsed as it arrives and the file part is written straight to
`<data_dir>/_uploads/<random>/<safe name>`, so a large upload never sits in memory or
in the system temp dir, and the limit is enforced while reading (not after).
The client's filename is reduced to a safe basename and never used as a path.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from lakehouse.gateway.api_errors import ApiError

UPLOADS_DIR = "_uploads"
QUARANTINE_DIR = "_quarantine"
FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096
MAX_FILENAME_CHARS = 120
#: room for boundaries and the small form fields when pre-checking Content-Length
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def safe_filename(client_name: str | None) -> str:
    """Basename of `client_name` with only [A-Za-z0-9._-] (no leading dots), or 'upload'."""
    base = re.split(r"[\\/]", client_name or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-MAX_FILENAME_CHARS:].lstrip(".")
    return cleaned or "upload"


def path_inside(directory: Path, filename: str) -> Path:
    """`directory / filename`, refusing anything that would land elsewhere. `safe_filename`
    already strips separators; this second check does not rely on it."""
    candidate = directory / filename
    if candidate.parent != directory or filename in ("", ".", ".."):
        raise ApiError(400, "InvalidUpload", "unusable file name")
    return candidate


@dataclass
class ReceivedUpload:
    #: the per-upload directory this module created; the only thing `discard` deletes
    workdir: Path
    path: Path
    client_filename: str | None
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0

    def discard(self) -> None:
        # Delete the directory we made, never a path derived from the client's input.
        shutil.rmtree(self.workdir, ignore_errors=True)


class _MultipartReceiver:
    """Callbacks for python-multipart's streaming parser: collects the small form
    fields in memory and hands file bytes to `pending` for the caller to write."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.client_filename: str | None = None
        self.file_seen = False
        self.file_size = 0
        self.pending: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._part_name: str | None = None
        self._part_is_file = False
        self._part_data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished"
        )}

    def on_part_begin(self) -> None:
        self._headers, self._part_name, self._part_is_file, self._part_data = {}, None, False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        self._part_is_file = self._part_name == FILE_FIELD
        if self._part_is_file:
            if self.file_seen:
                raise ApiError(400, "InvalidUpload", f"send exactly one {FILE_FIELD!r} part")
            self.file_seen = True
            self.client_filename = options.get(b"filename", b"").decode("utf-8", "replace") or None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part_is_file:
            self.file_size += len(chunk)
            if self.file_size > self.max_bytes:
                raise upload_too_large(self.max_bytes)
            self.pending.append(chunk)
        else:
            self._part_data += chunk
            if len(self._part_data) > MAX_FIELD_BYTES:
                raise ApiError(400, "InvalidUpload", f"form field {self._part_name!r} exceeds {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if not self._part_is_file and self._part_name:
            self.fields[self._part_name] = self._part_data.decode("utf-8", "replace").strip()


def upload_too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "UploadTooLarge", f"upload exceeds the limit of {max_bytes} bytes (gateway.max_upload_bytes in lakehouse.toml)")


def multipart_boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(400, "InvalidUpload", f"send multipart/form-data with the file in a part named {FILE_FIELD!r}")
    return params[b"boundary"]


def check_declared_length(request: Request, max_bytes: int) -> None:
    # Refuse an obviously oversized body before reading a byte of it.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise upload_too_large(max_bytes)


async def receive_upload(request: Request, uploads_root: Path, max_bytes: int) -> ReceivedUpload:
    """Stream the multipart body of `request` into a fresh directory under `uploads_root`."""
    check_declared_length(request, max_bytes)
    receiver = _MultipartReceiver(max_bytes)
    parser = MultipartParser(multipart_boundary(request), receiver.callbacks())
    workdir = uploads_root / uuid.uuid4().hex
    workdir.mkdir(parents=True)
    partial = workdir / "incoming"
    try:
        with open(partial, "wb") as fh:
            async for chunk in request.stream():
                parser.write(chunk)
                if receiver.pending:
                    # Disk writes go to a worker thread so the event loop keeps serving.
                    await anyio.to_thread.run_sync(fh.writelines, receiver.pending)
                    receiver.pending = []
            parser.finalize()
        if not receiver.file_seen:
            raise ApiError(400, "InvalidUpload", f"no file part named {FILE_FIELD!r} in the upload")
        path = partial.rename(path_inside(workdir, safe_filename(receiver.client_filename)))
        return ReceivedUpload(workdir, path, receiver.client_filename, receiver.fields, receiver.file_size)
    except FormParserError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ApiError(400, "InvalidUpload", f"malformed multipart body: {exc}") from exc
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def quarantine(upload: ReceivedUpload, quarantine_root: Path, report: dict[str, Any]) -> Path:
    """Move the uploaded file to `<quarantine_root>/<timestamp>_<safe name>` and write
    `<that>.error.json` beside it with `report`. Returns the quarantined file's path."""
    quarantine_root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path_inside(quarantine_root, f"{stamp}_{upload.path.name}")
    shutil.move(upload.path, target)
    record = {
        **report, "original_filename": upload.client_filename, "size_bytes": upload.size,
        "fields": upload.fields, "quarantined_at": datetime.now(timezone.utc).isoformat(),
    }
    target.with_name(target.name + ".error.json").write_text(json.dumps(record, indent=2, default=str))
    return target
