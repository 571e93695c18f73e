"""Read-only access to the files of a dataset stored as a zip archive or a folder."""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LABEL_FILES = ("dataset.json", "transforms.json")
"""Label files at a dataset root, in the order labels='auto' looks for them."""
# Folders that archivers add and that never hold dataset images.
_IGNORED_PARTS = ("__MACOSX",)


def normalize_name(name: str) -> str:
    """A dataset-relative path in posix form without './' prefixes (``./a\\b.png`` -> ``a/b.png``)."""
    name = name.replace("\\", "/")
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "")]
    return "/".join(parts)


def escapes_root(member: str) -> bool:
    """Whether a zip member name points outside the dataset (``../x.png``, ``/x.png``, ``C:\\x.png``)."""
    name = member.replace("\\", "/")
    parts = name.split("/")
    return name.startswith("/") or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":")


@dataclass(frozen=True)
class MemberClash:
    """Zip members that name the same dataset file (``x.png`` twice, or ``x.png`` and ``./x.png``)."""

    name: str
    """The dataset-relative path they all map to."""
    members: tuple[str, ...]
    """Each member as ``'raw name' (zip entry N)``, in archive order."""


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not any(p in name.split("/") for p in _IGNORED_PARTS)


def wrapping_folder(names: list[str]) -> str:
    """The one folder (``'plants_256/'``) that holds every file and the label file, else ``''``.

    EpiGRAF zips its datasets with the folder inside (``plants_256.zip`` holds ``plants_256/dataset.json``,
    ``plants_256/...``) and strips it from the names in dataset.json; such a folder is the dataset root.
    Example: ``wrapping_folder(["d/dataset.json", "d/a.png"])`` is ``'d/'``; ``wrapping_folder(["a.png"])`` is ``''``.
    """
    kept = [n for n in names if not any(p in n.split("/") for p in _IGNORED_PARTS)]
    if not kept or any(n in LABEL_FILES for n in kept) or any("/" not in n for n in kept):
        return ""
    tops = {n.split("/", 1)[0] for n in kept}
    if len(tops) != 1:
        return ""
    folder = tops.pop() + "/"
    return folder if any(folder + label in kept for label in LABEL_FILES) else ""


_ZIP_ERRORS = (NotImplementedError, UnicodeDecodeError)
"""What zipfile raises, besides BadZipFile, for a damaged version, compression method or UTF-8 file name."""


class DatasetSource:
    """Lists and reads the files of a dataset; a zip is reopened in each process that reads it.

    Zip file handles must not be shared across forked DataLoader workers, so the open handle is
    tied to the process id that opened it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"dataset path {self.path} does not exist; pass a zip file or a folder of images"
            )
        self.is_zip = self.path.is_file()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        self._member_names: dict[str, str] = {}
        self.root_folder = ""
        """The wrapping folder read as the dataset root (see :func:`wrapping_folder`), '' when there is none."""
        self.clashes: list[MemberClash] = []
        """Zip members merged under one name: a dataset problem, since only one of them can be read."""
        self.escaping_members: list[str] = []
        """Zip member names that leave the dataset root; they are not listed and cannot be read."""
        self._names = self._list_names()
        self._name_set = set(self._names)

    def _open_zip(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            # Raises zipfile.BadZipFile for truncated or non-zip files; callers report it.
            try:
                self._zip = zipfile.ZipFile(self.path)
            except _ZIP_ERRORS as error:  # a damaged directory entry: a version or a name zipfile cannot read
                raise zipfile.BadZipFile(f"damaged zip directory ({type(error).__name__}: {error})") from error
            self._zip_pid = os.getpid()
        return self._zip

    def _list_names(self) -> list[str]:
        if self.is_zip:
            return self._list_zip_members()
        names = []
        for root, _dirs, files in os.walk(self.path):
            for file_name in files:
                names.append(normalize_name(os.path.relpath(os.path.join(root, file_name), self.path)))
        self.root_folder = wrapping_folder(names)
        return sorted(n[len(self.root_folder):] for n in names if n.startswith(self.root_folder))

    def _list_zip_members(self) -> list[str]:
        by_name: dict[str, list[tuple[int, str]]] = {}
        for index, member in enumerate(self._open_zip().infolist()):
            if member.is_dir():
                continue
            if escapes_root(member.filename):
                self.escaping_members.append(member.filename)
                continue
            by_name.setdefault(normalize_name(member.filename), []).append((index, member.filename))
        self.root_folder = wrapping_folder(list(by_name))
        cut = len(self.root_folder)
        by_name = {name[cut:]: members for name, members in by_name.items() if name.startswith(self.root_folder)}
        self._member_names = {name: members[-1][1] for name, members in by_name.items()}
        self.clashes = [MemberClash(name, tuple(f"{raw!r} (zip entry {i})" for i, raw in members))
                        for name, members in sorted(by_name.items()) if len(members) > 1]
        return sorted(self._member_names)

    @property
    def names(self) -> list[str]:
        """Every file in the dataset, as sorted posix paths relative to its root."""
        return self._names

    def image_names(self) -> list[str]:
        return [n for n in self._names if is_image_name(n)]

    def __contains__(self, name: str) -> bool:
        return name in self._name_set

    def read(self, name: str) -> bytes:
        """The bytes of one file (raises KeyError/OSError/zipfile.BadZipFile when it cannot be read)."""
        if self.is_zip:
            try:
                return self._open_zip().read(self._member_names[name])
            except (zlib.error, *_ZIP_ERRORS) as error:  # zipfile passes these on as they are
                raise zipfile.BadZipFile(f"{name}: damaged compressed data or compression method ({error})") from error
        return (self.path / (self.root_folder + name)).read_bytes()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"], state["_zip_pid"] = None, None
        return state

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
