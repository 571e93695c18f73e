"""Damaged datasets built from a seed, each with the values loading must give or the entries a report must name."""

from __future__ import annotations

import functools
import io
import json
import random
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from tests.pipelines.data.data_test_utils import front_label, png_bytes, raw_png
from tests.reliability.fuzzing import case_rng, flip_bytes, truncate

RESOLUTION = 16
NUM_IMAGES = 6
LABEL_FILE = "dataset.json"
DATASET = "<dataset>"
"""In :attr:`DatasetCase.damaged`: the report may name the dataset path itself (a zip that cannot be opened)."""
_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
WHITE = (255, 255, 255)
"""The default DatasetConfig.background, in 8 bits: what transparent pixels become."""


@dataclass
class DatasetCase:
    """One damaged dataset and what a correct reader does with it."""

    kind: str
    seed: int
    detail: str
    """What was done to the dataset, in words (for failure messages)."""
    container: Literal["zip", "folder"]
    members: list[tuple[str, bytes]]
    """The files, in zip order (names may repeat or leave the root in a zip)."""
    images: dict[str, np.ndarray]
    """uint8 [R, R, 3] every listed image must load as when it is not reported, by dataset path."""
    labels: dict[str, np.ndarray] | None
    """float32 [25] labels by dataset path; None: the dataset must load as unlabeled."""
    damaged: set[str]
    """Entries a problem may name (:data:`DATASET`: the dataset path); at least one must be named when reported."""
    expect: Literal["ok", "problem", "either"] = "either"
    """ok: must load with the expected values; problem: must be reported; either: one of the two."""
    zip_bytes: bytes | None = None
    """The damaged archive, when the damage is to the zip file as a whole."""
    any_entry: bool = False
    """Problems may also name entries not in ``damaged`` (a damaged zip directory can rename or merge members)."""
    atol: int = 0
    """Tolerance on 8-bit pixel values (alpha compositing may round either way)."""
    labels_optional: bool = False
    """The dataset may also load as unlabeled: the zip directory entry naming dataset.json is damaged, which
    leaves a zip without dataset.json (unlabeled by design, like a folder without one)."""
    compression: int = zipfile.ZIP_STORED
    """How zip members are stored: ZIP_STORED (EG3D's dataset_tool) or ZIP_DEFLATED (the zip command)."""

    @property
    def name(self) -> str:
        container = self.container if self.container == "folder" else f"zip {_COMPRESSION[self.compression]}"
        return f"{self.kind}[seed={self.seed}, {container}] {self.detail}"

    def write(self, folder: Path) -> Path:
        """Writes the dataset under ``folder``; returns the path a command is given."""
        if self.container == "zip":
            path = folder / "data.zip"
            if self.zip_bytes is not None:
                path.write_bytes(self.zip_bytes)
            else:
                path.write_bytes(zip_bytes(self.members, self.compression))
            return path
        path = folder / "data"
        for name, data in self.members:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        return path


# ---------------------------------------------------------------------------------------- the intact set
@functools.cache
def _front_labels() -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(front_label(0.15 * i - 0.4, 0.1 + 0.02 * i)) for i in range(NUM_IMAGES))


def _image(rng: np.random.Generator, index: int, size: int = RESOLUTION) -> np.ndarray:
    """Even indices: smooth gradients (deflate compresses them); odd: noise (stored nearly raw)."""
    if index % 2:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    slopes = rng.integers(-12, 13, (3, 2))
    offsets = rng.integers(0, 256, 3)
    channels = [(offsets[c] + slopes[c, 0] * xx + slopes[c, 1] * yy) % 256 for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def intact_case(kind: str, seed: int, rng: random.Random) -> DatasetCase:
    """A valid EG3D dataset of six 16 px images (zip or folder, chosen by ``rng``) that ``kind`` then damages."""
    pixels = np.random.default_rng(rng.getrandbits(32))
    names = [f"img{i}.png" for i in range(NUM_IMAGES)]
    images = {name: _image(pixels, i) for i, name in enumerate(names)}
    labels = {name: np.asarray(_front_labels()[i], np.float64).astype(np.float32) for i, name in enumerate(names)}
    members = [(name, png_bytes(images[name])) for name in names]
    document = {"labels": [[name, list(_front_labels()[i])] for i, name in enumerate(names)]}
    members.insert(rng.randint(0, len(members)), (LABEL_FILE, json.dumps(document).encode()))
    container = rng.choice(["zip", "folder"])
    compression = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
    return DatasetCase(kind, seed, "", container, members, images, labels, set(), compression=compression)


def _member(case: DatasetCase, name: str) -> bytes:
    return dict(case.members)[name]


def _replace_member(case: DatasetCase, name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(n, data if n == name else d) for n, d in case.members]


def _image_names(case: DatasetCase) -> list[str]:
    return sorted(case.images)


def _label_document(case: DatasetCase) -> dict:
    return json.loads(_member(case, LABEL_FILE))


# ------------------------------------------------------------------------------------------- zip damage
def zip_truncated(seed: int) -> DatasetCase:
    rng = case_rng("zip_truncated", seed)
    case = replace(intact_case("zip_truncated", seed, rng), container="zip")
    data = zip_bytes(case.members, case.compression)
    cut = truncate(data, rng)
    return replace(case, detail=f"zip cut to {len(cut)} of {len(data)} bytes", zip_bytes=cut,
                   damaged={DATASET}, expect="problem")


def zip_flipped(seed: int) -> DatasetCase:
    rng = case_rng("zip_flipped", seed)
    case = replace(intact_case("zip_flipped", seed, rng), container="zip")
    data = zip_bytes(case.members, case.compression)
    damaged_data, offsets = flip_bytes(data, rng)
    hit = {_zip_region(data, offset) for offset in offsets}
    damaged = {name for name in hit if name is not None} | {DATASET}
    if None in hit:  # the end record: any member may become unreadable
        damaged |= {name for name, _ in case.members}
    if LABEL_FILE in damaged:  # without labels every image is rightly reported unlabeled
        damaged |= set(case.images)
    # A damaged directory entry can rename a member onto another one's name: then that one is named too.
    in_directory = any(offset >= _directory_start(data) for offset in offsets)
    return replace(case, detail=f"bytes flipped at {offsets} of {len(data)} (in {sorted(map(str, hit))})",
                   zip_bytes=damaged_data, damaged=damaged, any_entry=in_directory,
                   labels_optional=any(_renames(data, offset, LABEL_FILE) for offset in offsets))


def zip_bytes(members: list[tuple[str, bytes]], compression: int) -> bytes:
    """A zip of ``members`` in order (repeated names included; zipfile warns about those)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as archive:
        warnings.simplefilter("ignore", UserWarning)
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _directory_start(data: bytes) -> int:
    return struct.unpack_from("<I", data, len(data) - 22 + 16)[0]


def _renames(data: bytes, offset: int, name: str) -> bool:
    """Whether byte ``offset`` lies in the file name of ``name``'s central directory entry."""
    entry = _directory_start(data)
    while data[entry:entry + 4] == b"PK\x01\x02":
        name_size, extra_size, comment_size = struct.unpack_from("<HHH", data, entry + 28)
        if data[entry + 46:entry + 46 + name_size] == name.encode():
            return entry + 46 <= offset < entry + 46 + name_size
        entry += 46 + name_size + extra_size + comment_size
    return False


def _zip_region(data: bytes, offset: int) -> str | None:
    """The member whose local header, data or central directory entry holds byte ``offset``; None: the end record."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    for info in infos:
        local_header = 30 + len(info.filename.encode()) + len(info.extra)
        if info.header_offset <= offset < info.header_offset + local_header + info.compress_size:
            return info.filename
    entry = _directory_start(data)
    for info in infos:
        name_size, extra_size, comment_size = struct.unpack_from("<HHH", data, entry + 28)
        end = entry + 46 + name_size + extra_size + comment_size
        if entry <= offset < end:
            return info.filename
        entry = end
    return None


# ------------------------------------------------------------------------------------------- PNG damage
def png_truncated(seed: int) -> DatasetCase:
    rng = case_rng("png_truncated", seed)
    case = intact_case("png_truncated", seed, rng)
    name = rng.choice(_image_names(case))
    data = _member(case, name)
    cut = truncate(data, rng)
    return replace(case, detail=f"{name} cut to {len(cut)} of {len(data)} bytes",
                   members=_replace_member(case, name, cut), damaged={name})


def png_flipped(seed: int) -> DatasetCase:
    rng = case_rng("png_flipped", seed)
    case = intact_case("png_flipped", seed, rng)
    name = rng.choice(_image_names(case))
    data = _member(case, name)
    damaged_data, offsets = flip_bytes(data, rng)
    return replace(case, detail=f"{name}: bytes flipped at {offsets} of {len(data)}",
                   members=_replace_member(case, name, damaged_data), damaged={name})


# ------------------------------------------------------------------------------------------- PNG modes
def _gray(values: np.ndarray) -> np.ndarray:
    return np.repeat(values.astype(np.uint8)[..., None], 3, axis=-1)


def _mode_png(mode: str, rng: np.random.Generator) -> tuple[bytes, np.ndarray, int]:
    """A hand-written PNG of ``mode`` with random samples, the 8-bit RGB it means, and the tolerance."""
    shape = (RESOLUTION, RESOLUTION)
    if mode.startswith("gray") and mode[4:].isdigit():
        depth = int(mode[4:])
        samples = rng.integers(0, 2**depth, shape)
        # 1-8 bits: scaled to the full range; 16 bits: round(v / 257) (pipelines/data/images.py, _gray16_to_la).
        expected = np.round(samples * 255 / (2**depth - 1)).astype(np.uint8)
        return raw_png(samples, 0, depth), _gray(expected), 0
    if mode == "gray16_trns":
        samples = rng.integers(0, 256, shape) * 257
        key = int(samples[0, 0])
        expected = np.where((samples == key)[..., None], WHITE, _gray(samples // 257)).astype(np.uint8)
        return raw_png(samples, 0, 16, chunks=((b"tRNS", struct.pack(">H", key)),)), expected, 0
    if mode.startswith("palette"):
        depth = int(mode.split("_")[0][7:])
        count = min(2**depth, 12)
        palette = rng.integers(0, 256, (count, 3))
        index = rng.integers(0, count, shape)
        chunks = [(b"PLTE", palette.astype(np.uint8).tobytes())]
        expected = palette[index].astype(np.uint8)
        if mode.endswith("_trns"):  # alpha 0 or 255 per palette entry: exact after compositing
            alpha = rng.choice([0, 255], count)
            chunks.append((b"tRNS", alpha.astype(np.uint8).tobytes()))
            expected = np.where((alpha[index] == 0)[..., None], WHITE, expected).astype(np.uint8)
        return raw_png(index, 3, depth, chunks=tuple(chunks)), expected, 0
    if mode in ("la", "la_partial"):
        gray = rng.integers(0, 256, shape)
        alpha = rng.choice([0, 255], shape) if mode == "la" else rng.integers(0, 256, shape)
        composited = np.round(gray * alpha / 255 + 255 * (1 - alpha / 255))
        return raw_png(np.stack([gray, alpha], -1), 4, 8), _gray(composited), 0 if mode == "la" else 1
    if mode in ("rgba", "rgba16"):
        scale = 257 if mode == "rgba16" else 1
        rgb = rng.integers(0, 256, (*shape, 3))
        alpha = rng.choice([0, 255], (*shape, 1))
        expected = np.where(alpha == 0, WHITE, rgb).astype(np.uint8)
        return raw_png(np.concatenate([rgb, alpha], -1) * scale, 6, 16 if scale > 1 else 8), expected, 0
    if mode == "rgb16":
        rgb = rng.integers(0, 256, (*shape, 3))
        return raw_png(rgb * 257, 2, 16), rgb.astype(np.uint8), 0
    raise ValueError(mode)


IMAGE_MODES = ("gray1", "gray2", "gray4", "gray8", "gray16", "gray16_trns", "palette1", "palette2", "palette4",
               "palette8", "palette8_trns", "palette4_trns", "la", "la_partial", "rgba", "rgba16", "rgb16")


def image_mode(seed: int) -> DatasetCase:
    rng = case_rng("image_mode", seed)
    case = intact_case("image_mode", seed, rng)
    mode = IMAGE_MODES[seed % len(IMAGE_MODES)]
    name = rng.choice(_image_names(case))
    data, expected, atol = _mode_png(mode, np.random.default_rng(rng.getrandbits(32)))
    return replace(case, detail=f"{name} is a {mode} PNG", members=_replace_member(case, name, data),
                   images={**case.images, name: expected}, damaged={name}, expect="ok", atol=atol)


# ------------------------------------------------------------------------------------------ image sizes
SIZE_KINDS = ("non_square", "tiny", "larger", "huge_header", "header_too_big", "zero_size")


def image_size(seed: int) -> DatasetCase:
    rng = case_rng("image_size", seed)
    case = intact_case("image_size", seed, rng)
    what = SIZE_KINDS[seed % len(SIZE_KINDS)]
    name = rng.choice(_image_names(case))
    pixels = np.random.default_rng(rng.getrandbits(32))
    expect, expected = "problem", case.images[name]
    if what == "non_square":
        width = rng.randint(2, 40)
        height = rng.choice([h for h in range(2, 41) if h != width])
        data, detail = png_bytes(pixels.integers(0, 256, (height, width, 3), dtype=np.uint8)), f"{width}x{height}"
    elif what == "tiny":  # a side under R/4: used with a warning, upscaled; one colour stays that colour
        side = rng.randint(1, RESOLUTION // 4 - 1)
        colour = pixels.integers(0, 256, 3, dtype=np.uint8)
        data, detail = png_bytes(np.broadcast_to(colour, (side, side, 3)).copy()), f"{side}x{side} of one colour"
        expect, expected = "ok", np.broadcast_to(colour, (RESOLUTION, RESOLUTION, 3)).copy()
    elif what == "larger":  # resized to R with Lanczos (what DatasetConfig.resize='resize' promises)
        side = rng.choice([17, 20, 24, 32, 48, 64, 100, 256])
        source = _image(pixels, rng.randint(0, 1), side)
        data, detail = png_bytes(source), f"{side}x{side}, resized to {RESOLUTION}"
        resized = Image.fromarray(source).resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS)
        expect, expected = "ok", np.asarray(resized)
    elif what == "huge_header":  # the header claims more pixels than the 16 R x 16 R decoded per image
        side = rng.choice([16 * RESOLUTION + 1, 5000, 65535, 2**31 - 1])
        data, detail = raw_png(pixels.integers(0, 256, (4, 4, 3)), 2, 8, size=(side, side)), f"header says {side}^2"
    elif what == "header_too_big":  # the header claims more rows and columns than the data holds
        side = RESOLUTION + rng.randint(1, 8)
        data = raw_png(pixels.integers(0, 256, (RESOLUTION, RESOLUTION, 3)), 2, 8, size=(side, side))
        detail = f"header says {side}^2, data {RESOLUTION}^2"
    else:
        data, detail = raw_png(pixels.integers(0, 256, (4, 4, 3)), 2, 8, size=(0, 0)), "header says 0x0"
    return replace(case, detail=f"{name}: {what} ({detail})", members=_replace_member(case, name, data),
                   images={**case.images, name: expected}, damaged={name}, expect=expect)


# ---------------------------------------------------------------------------------------- member names
MEMBER_KINDS = ("duplicate", "dot_slash", "traversal_extra", "traversal_rename", "duplicate_label_file")
TRAVERSALS = ("../{}", "../../{}", "/{}", "sub/../../{}", "..\\{}", "C:\\{}", "C:/{}")


def member_names(seed: int) -> DatasetCase:
    rng = case_rng("member_names", seed)
    case = replace(intact_case("member_names", seed, rng), container="zip")
    what = MEMBER_KINDS[seed % len(MEMBER_KINDS)]
    name = rng.choice(_image_names(case))
    other = png_bytes(np.random.default_rng(rng.getrandbits(32)).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    members = list(case.members)
    position = rng.randint(0, len(members))
    damaged = {name}
    if what == "duplicate":
        members.insert(position, (name, rng.choice([other, _member(case, name)])))
    elif what == "dot_slash":
        members.insert(position, (rng.choice(["./", ".//", "./././"]) + name, other))
    elif what == "traversal_extra":
        extra = rng.choice(TRAVERSALS).format("x.png")
        members.insert(position, (extra, other))
        damaged = {extra}
    elif what == "traversal_rename":
        moved = rng.choice(TRAVERSALS).format(name)
        members = [(moved if n == name else n, d) for n, d in members]
        damaged = {name, moved}
    else:
        members.insert(position, (rng.choice(["", "./"]) + LABEL_FILE, _member(case, LABEL_FILE)))
        damaged = {LABEL_FILE}
    return replace(case, detail=f"{what} ({[n for n, _ in members]})", members=members, damaged=damaged,
                   expect="problem")


# ------------------------------------------------------------------------------------------ label values
def _rotation(rng: random.Random) -> np.ndarray:
    q = np.array([rng.gauss(0, 1) for _ in range(4)])
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _bad_label(what: str, label: list[float], rng: random.Random) -> object:
    """``label`` damaged as ``what`` says (a 25-float list, or something that is not one)."""
    values = list(label)
    pose = np.asarray(values[:16]).reshape(4, 4)
    index = rng.randrange(25)
    if what in ("nan", "inf", "-inf"):
        values[index] = float(what)
    elif what == "overflow":
        values[index] = rng.choice([1e300, -1e300, 3.5e38, 1e39])
    elif what == "far_translation":
        pose[rng.randrange(3), 3] = rng.choice([1e30, -1e30, 1e5, 6e3])
        values[:16] = pose.reshape(-1).tolist()
    elif what == "wrong_length":
        size = rng.choice([n for n in range(0, 41) if n != 25])
        values = (values * 2)[:size]
    elif what == "not_numbers":
        values = rng.choice([None, "label", {"pose": values}, [values], values[:24] + ["x"], values[:24] + [None]])
    elif what == "non_rigid":
        change = rng.choice(["scale", "shear", "reflection"])
        matrix = {"scale": np.diag([rng.uniform(1.1, 3.0), 1.0, 1.0]),
                  "shear": np.array([[1.0, rng.uniform(0.1, 1.0), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                  "reflection": np.diag([-1.0, 1.0, 1.0])}[change]
        pose[:3, :3] = pose[:3, :3] @ matrix
        values[:16] = pose.reshape(-1).tolist()
    elif what == "last_row":
        values[12 + rng.randrange(4)] += rng.choice([0.5, -2.0, 10.0])
    elif what == "bad_intrinsics":
        index = rng.choice([16, 20, 22, 23, 24])  # fx, fy (must be > 0), then the last row (must be 0 0 1)
        values[index] = rng.choice([0.0, -1.0] if index in (16, 20) else [0.5, -1.0, 2.0] if index < 24 else [0.0, 2.0])
    else:
        raise ValueError(what)
    return values


def _valid_label(what: str, rng: random.Random) -> list[float]:
    """A rigid camera elsewhere (``moved``) or with rounding-level noise on its rotation (``near_rigid``)."""
    pose = np.eye(4)
    pose[:3, :3] = _rotation(rng)
    pose[:3, 3] = [rng.uniform(-3, 3) for _ in range(3)]
    if what == "near_rigid":  # R^T R within pipelines.data.labels.RIGID_TOLERANCE of I
        pose[:3, :3] += np.array([[rng.uniform(-1e-3, 1e-3) for _ in range(3)] for _ in range(3)])
    intrinsics = [rng.uniform(0.5, 5.0), 0.0, rng.uniform(0.3, 0.7), 0.0, rng.uniform(0.5, 5.0),
                  rng.uniform(0.3, 0.7), 0.0, 0.0, 1.0]
    return pose.reshape(-1).tolist() + intrinsics


LABEL_KINDS = ("nan", "inf", "-inf", "overflow", "far_translation", "wrong_length", "not_numbers", "non_rigid",
               "last_row", "bad_intrinsics", "moved", "near_rigid")


def label_value(seed: int) -> DatasetCase:
    rng = case_rng("label_value", seed)
    case = intact_case("label_value", seed, rng)
    what = LABEL_KINDS[seed % len(LABEL_KINDS)]
    document = _label_document(case)
    entry = rng.randrange(len(document["labels"]))
    name = document["labels"][entry][0]
    labels = dict(case.labels)
    if what in ("moved", "near_rigid"):
        values: object = _valid_label(what, rng)
        labels[name] = np.asarray(values, np.float64).astype(np.float32)
        expect = "ok"
    else:
        values, expect = _bad_label(what, document["labels"][entry][1], rng), "problem"
    document["labels"][entry][1] = values
    text = json.dumps(document).encode()  # NaN and Infinity as Python's json writes them (EG3D's tools do too)
    return replace(case, detail=f"label of {name}: {what} ({str(values)[:80]})",
                   members=_replace_member(case, LABEL_FILE, text), labels=labels, damaged={name}, expect=expect)


# ------------------------------------------------------------------------------------------- label file
FILE_KINDS = ("truncated", "junk", "not_utf8", "list", "empty_object", "misspelt_key", "labels_object",
              "labels_number", "entry_not_pair", "entry_name_not_string", "labels_null", "flipped")


def label_file(seed: int) -> DatasetCase:
    rng = case_rng("label_file", seed)
    case = intact_case("label_file", seed, rng)
    what = FILE_KINDS[seed % len(FILE_KINDS)]
    text = _member(case, LABEL_FILE)
    document = _label_document(case)
    labels: dict[str, np.ndarray] | None = case.labels
    expect = "problem"
    if what == "truncated":
        data = truncate(text, rng)
    elif what == "junk":
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    elif what == "not_utf8":
        data = text.replace(b'"img', b'"\xff\xfeimg', 1)
    elif what == "list":
        data = json.dumps(document["labels"]).encode()
    elif what in ("empty_object", "misspelt_key"):
        # No 'labels' field reads as images without cameras (pipelines/data/labels.py): it must not load cameras.
        key = rng.choice(["label", "Labels", "lables"])
        data = b"{}" if what == "empty_object" else json.dumps({key: document["labels"]}).encode()
        labels, expect = None, "either"
    elif what == "labels_object":  # EpiGRAF's {path: value} layout of the same cameras
        data, expect = json.dumps({"labels": dict(document["labels"])}).encode(), "either"
    elif what == "labels_number":
        data = json.dumps({"labels": rng.choice([5, "labels", True])}).encode()
    elif what == "entry_not_pair":
        entry = rng.randrange(len(document["labels"]))
        document["labels"][entry] = rng.choice([document["labels"][entry][:1], document["labels"][entry] + [1],
                                                 {"file": document["labels"][entry][0]}])
        data = json.dumps(document).encode()
    elif what == "entry_name_not_string":
        entry = rng.randrange(len(document["labels"]))
        document["labels"][entry][0] = rng.choice([5, None, ["img0.png"]])
        data = json.dumps(document).encode()
    elif what == "labels_null":  # EG3D's own spelling of an unlabeled collection
        data, labels, expect = b'{"labels": null}', None, "ok"
    else:
        return _flipped_label_file(case, rng)
    damaged = {LABEL_FILE} | set(case.images)  # images without a usable label are rightly reported unlabeled
    return replace(case, detail=f"{LABEL_FILE}: {what} ({data[:60]!r})",
                   members=_replace_member(case, LABEL_FILE, data), labels=labels, damaged=damaged, expect=expect)


def _flipped_label_file(case: DatasetCase, rng: random.Random) -> DatasetCase:
    """Flipped bytes: unreadable JSON must be reported; readable JSON must load as it now reads."""
    data, offsets = flip_bytes(_member(case, LABEL_FILE), rng)
    damaged = {LABEL_FILE} | set(case.images)
    expect, labels = "problem", case.labels
    try:
        document = json.loads(data)
        if isinstance(document, dict) and "labels" not in document:  # e.g. the key's name changed
            expect, labels = "either", None
        pairs = document["labels"]
        labels = {name: np.asarray(values, np.float64).astype(np.float32) for name, values in pairs}
        if sorted(labels) == sorted(case.images) and len(pairs) == len(labels):
            expect = "either"  # e.g. a digit changed: the new value is what the file says
    except (ValueError, TypeError, KeyError):
        pass
    return replace(case, detail=f"{LABEL_FILE}: bytes flipped at {offsets}",
                   members=_replace_member(case, LABEL_FILE, data), labels=labels, damaged=damaged,
                   expect=expect, any_entry=True)


CASE_BUILDERS: dict[str, Callable[[int], DatasetCase]] = {
    "zip_truncated": zip_truncated,
    "zip_flipped": zip_flipped,
    "png_truncated": png_truncated,
    "png_flipped": png_flipped,
    "image_mode": image_mode,
    "image_size": image_size,
    "member_names": member_names,
    "label_value": label_value,
    "label_file": label_file,
}
"""Every kind of damaged dataset, by the kind name the tally counts."""
REGRESSION_SEEDS = {"png_flipped": (52,), "zip_flipped": (141, 148, 153, 194, 1133)}
"""Seeds that found bugs in longer runs, kept in every run: png_flipped 52 decoded silently to other pixels
(Pillow skips the IDAT checksum); zip_flipped 153 and 1133 raised NotImplementedError (a damaged compression
method; a damaged "version needed to extract", when the zip is opened); 141 damages the zip's end record;
148 and 194 rename dataset.json in the zip directory. They name these cases only while the builders draw
their random numbers in the same order."""
SEED_SCALE = {"image_mode": 1.5, "label_value": 1.5, "label_file": 1.5, "png_flipped": 2.0, "zip_flipped": 2.0}
"""Kinds with many variants get more seeds (variants are picked by seed modulo their count)."""
