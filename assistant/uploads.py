"""Uploads: files a user adds in the chat, saved under ``<corpus>/uploads/`` and ingested at once.

Names keep their letters in any script (``отчёт.md`` stays ``отчёт.md``); only path separators,
control characters and a few characters that are unsafe in file names become ``_``. An upload never
overwrites another one: a file is replaced only by an upload *of the same name* (a new version of
``report.md`` replaces ``report.md``, which is the evident intent); two different names that would
be saved alike (``a?b.md``, ``a*b.md``) get ``a_b.md`` and ``a_b (2).md``. The name each saved file
was uploaded under is kept in the hidden ``.upload-names.json`` next to them.

Each upload is capped (size, documents, chunks, PDF pages; settings ``upload_max_*``). A file that
fails to load, or loads nothing, is removed again (a replaced version is put back) and its one-line
reason shown.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from assistant.loading import JSONL_SUFFIXES, SUPPORTED_SUFFIXES
from assistant.ownership import UPLOAD_SUBDIR

NAMES_FILE = ".upload-names.json"
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; UTF-8 letters take up to 4
UNSAFE_CHARS = re.compile(r"[^\w .,()\[\]+&'@#=!~-]")  # \w: letters and digits of every script


class UploadError(ValueError):
    """An uploaded file cannot be accepted; the message says why and what to do."""


@dataclass
class SavedUpload:
    """One file saved into the upload area: where, under which name it came, and what it did."""

    path: Path
    original: str
    action: str  # "added" | "replaced" | "unchanged"
    previous: Path | None = None  # the replaced version, put back if the new one fails to load
    area: str = UPLOAD_SUBDIR  # the folder under the corpus: uploads/, or a user's uploads/<owner>/

    @property
    def doc_id(self) -> str:
        return f"{self.area}/{self.path.name}"


def safe_upload_name(name: str) -> str:
    """The basename to store an uploaded file under, or :class:`UploadError`.

    Only the last path component is kept (``/`` and ``\\`` both separate), hidden names and ``..``
    are refused, letters of any script, digits and common punctuation are kept, anything else
    becomes ``_``. The type must be one we ingest.
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", str(name or "")))[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if not base or base in {".", ".."}:
        raise UploadError(f"{name!r} is not a usable file name; rename the file and upload it again")
    if base.startswith("."):
        raise UploadError(f"{base}: hidden file names (starting with '.') are not accepted; rename the file")
    suffix = Path(base).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UploadError(f"{base}: file type '{suffix or 'none'}' is not supported; upload one of {allowed}")
    stem = UNSAFE_CHARS.sub("_", base[: -len(suffix)])
    stem = re.sub(r"\.{2,}", "_", stem).strip(" .") or "upload"
    while len((stem + suffix).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    safe = stem.rstrip(" .") + suffix
    return f"upload-{safe}" if safe == "README.md" else safe  # README.md is never ingested


def _names(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / NAMES_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_names(folder: Path, names: dict[str, str]) -> None:
    temp = folder / f"{NAMES_FILE}.{os.getpid()}.tmp"
    temp.write_text(json.dumps(names, ensure_ascii=False, indent=1), "utf-8")
    temp.replace(folder / NAMES_FILE)


def _free_name(folder: Path, name: str, taken: set[str]) -> str:
    stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
    number = 2
    while f"{stem} ({number}){suffix}" in taken or (folder / f"{stem} ({number}){suffix}").exists():
        number += 1
    return f"{stem} ({number}){suffix}"


def save_uploads(files: list[str | Path], corpus_dir: Path, max_mb: float,
                 owner: str | None = None) -> tuple[list[SavedUpload], list[str]]:
    """Copy uploaded temp files into ``<corpus_dir>/uploads/`` (see the module text for names), or
    into ``uploads/<owner>/`` for a signed-in user's private uploads (assistant/ownership.py).

    ``files`` are the paths Gradio wrote the uploads to (their basenames are the user's file
    names). Returns the saved uploads and one line per refused file.
    """
    area = f"{UPLOAD_SUBDIR}/{owner}" if owner else UPLOAD_SUBDIR
    folder = (Path(corpus_dir) / area).resolve()
    names = _names(folder)
    saved: list[SavedUpload] = []
    problems: list[str] = []
    for file in files or []:
        path = Path(file)
        try:
            name = safe_upload_name(path.name)
            original = unicodedata.normalize("NFC", path.name)
            size = path.stat().st_size
            if size > max_mb * 1024 * 1024:
                raise UploadError(f"{name}: {size / 1024 / 1024:.1f} MB is over the {max_mb:g} MB upload "
                                  "limit (ASSISTANT_UPLOAD_MAX_MB raises it)")
            if size == 0:
                raise UploadError(f"{name}: the file is empty")
            this_batch = {s.path.name for s in saved}
            target = folder / name
            action, previous = "added", None
            if target.exists() or name in this_batch:
                if name not in this_batch and names.get(name, name) == original:
                    action = "unchanged" if filecmp.cmp(path, target, shallow=False) else "replaced"
                else:
                    target = folder / _free_name(folder, name, this_batch)
            if target.resolve().parent != folder:  # belt and braces: never write outside uploads/
                raise UploadError(f"{name}: not a usable file name; rename the file")
            folder.mkdir(parents=True, exist_ok=True)
            if action == "replaced":
                previous = folder / f".{target.name}.previous"
                shutil.copyfile(target, previous)
            if action != "unchanged":
                shutil.copyfile(path, target)
            names[target.name] = original
            saved.append(SavedUpload(target, original, action, previous, area))
        except UploadError as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{path.name}: could not be saved ({exc.strerror or exc})")
    if saved:
        _write_names(folder, names)
    return saved, problems


def settle(saved: list[SavedUpload], report) -> list[tuple[bool, str]]:
    """After the ingest of ``saved``: remove each file that failed to load or loaded nothing (putting
    back the version it replaced), and return (ok, one line) per file."""
    lines = []
    for upload in saved:
        doc_id = upload.doc_id
        problem = next((p for p in report.failed if p.path == doc_id), None)
        loaded = report.loaded.get(str(upload.path.resolve()), 0)
        if problem is not None or not loaded:
            _undo(upload)
            skipped = [str(p) for p in report.failed if p.path.startswith(doc_id + ":")]
            reason = str(problem) if problem else (skipped[0] if skipped else f"{doc_id}: nothing could be loaded")
            lines.append((False, f"{reason} (the file was removed)"))
            continue
        if upload.previous is not None:
            upload.previous.unlink(missing_ok=True)
        skipped = sum(p.path.startswith(doc_id + ":") for p in report.failed)
        if upload.path.suffix.lower() in JSONL_SUFFIXES:
            note = f"{loaded} documents ingested" + (f", {skipped} lines skipped" if skipped else "")
        elif doc_id in report.added:
            note = "added"
        elif doc_id in report.updated:
            note = "updated"
        else:
            note = "unchanged"
        if upload.original != upload.path.name:
            note += f", saved as {upload.path.name}"
        lines.append((True, f"{upload.original}: {note}, searchable now"))
    return lines


def _undo(upload: SavedUpload) -> None:
    if upload.previous is not None and upload.previous.exists():
        upload.previous.replace(upload.path)
    elif upload.action == "added":
        upload.path.unlink(missing_ok=True)
        names = _names(upload.path.parent)
        names.pop(upload.path.name, None)
        _write_names(upload.path.parent, names)
