"""Dataset formats: read CIFAR-100 (pickles or a staged folder), write SageMaker .lst + PNGs."""

from __future__ import annotations

import csv
import io
import json
import logging
import pickle
import tarfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from local_model.lst import BadLst, LstEntry, parse_lst
from scones import SconesError, UsageError

LOG = logging.getLogger(__name__)

# CIFAR-100's 100 fine class names in label order (the order of the tarball's `meta` file).
CIFAR100_FINE_NAMES: tuple[str, ...] = tuple(
    """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain
    mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain
    plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk
    skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone
    television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm
    """.split()
)
VEHICLE_SUPERCLASSES = ("vehicles_1", "vehicles_2")
# The ten fine classes of the two vehicle superclasses, by superclass then fine label. Used when
# the source has no `meta` file (a staged folder); a tarball's own meta is preferred.
VEHICLE_CLASSES = (
    "bicycle",
    "bus",
    "motorcycle",
    "pickup_truck",
    "train",
    "lawn_mower",
    "rocket",
    "streetcar",
    "tank",
    "tractor",
)
VEHICLES = "vehicles"  # the --classes shorthand for VEHICLE_CLASSES
DEFAULT_CLASSES = ("bicycle", "motorcycle")  # the original Scones Unlimited project's pair
OFFICIAL_SPLITS = ("train", "test")
SPLITS = ("train", "validation", "test")  # validation is carved from train, never from test
MARKER = "stage.json"  # written last: a staged folder without it is incomplete
CLASSES_FILE = "classes.json"
PICKLE_SPLIT_KEYS = (b"data", b"fine_labels", b"coarse_labels", b"filenames")
PICKLE_META_KEYS = (b"fine_label_names", b"coarse_label_names")
# The CIFAR pickles hold numpy arrays; the only globals they may name (see _SafeUnpickler).
PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class DatasetError(SconesError):
    """A dataset source cannot be read or used."""


class NotADataset(DatasetError):
    """A path that is neither a CIFAR-100 tarball/folder nor a staged folder (PNGs + .lst)."""


class CorruptArchive(DatasetError):
    """A tarball or pickle that is truncated or damaged."""


class UnknownClass(DatasetError, UsageError):
    """A --classes name the source does not have."""


# ------------------------------ .lst manifests ------------------------------


def load_lst(path: Path) -> list[LstEntry]:
    """Read a .lst file into entries; a bad line or an unreadable file is NotADataset."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise NotADataset(f"cannot read {path}: {err}") from err
    try:
        return parse_lst(text, str(path))
    except BadLst as err:
        raise NotADataset(str(err)) from err


# ------------------------------ classes.json ------------------------------


@dataclass(frozen=True)
class ClassInfo:
    """One class of a staged dataset: its label there, name, CIFAR-100 fine label, counts."""

    label: int
    name: str
    fine_label: int | None
    counts: dict[str, int] = field(default_factory=dict)


def classes_json(classes: Sequence[ClassInfo]) -> str:
    """classes.json text: {"<label>": {"name", "fine_label", "counts"}}, labels 0..N-1."""
    body = {
        str(c.label): {"name": c.name, "fine_label": c.fine_label, "counts": c.counts}
        for c in classes
    }
    return json.dumps(body, indent=2) + "\n"


def load_classes(path: Path) -> list[ClassInfo]:
    """Read a staged folder's classes.json (or the file itself), ordered by label."""
    path = Path(path)
    if path.is_dir():
        path = path / CLASSES_FILE
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        classes = [
            ClassInfo(int(k), str(v["name"]), v.get("fine_label"), dict(v.get("counts") or {}))
            for k, v in body.items()
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise NotADataset(f"{path} is not a scones classes.json: {err}") from err
    classes.sort(key=lambda c: c.label)
    if [c.label for c in classes] != list(range(len(classes))):
        raise NotADataset(f"{path}: labels must be 0..N-1")
    return classes


def is_staged(folder: Path) -> bool:
    """Whether a folder is a complete staged dataset (its marker, written last, exists)."""
    return (Path(folder) / MARKER).is_file()


# ------------------------------ Sources ------------------------------


@dataclass
class SplitData:
    """The images of one official split: file name and class name per image, pixels on demand."""

    filenames: list[str]
    names: list[str]
    pixels: Callable[[int], np.ndarray]  # index -> HxWx3 uint8 RGB


@dataclass
class SourceData:
    """A readable dataset: its classes and its official train/test splits."""

    kind: str  # "tarball", "cifar-folder" or "staged-folder"
    path: Path
    class_names: list[str]  # every class the source holds, in its label order
    fine_labels: dict[str, int | None]  # class name -> CIFAR-100 fine label, when known
    vehicles: list[str]  # the vehicle superclasses' classes this source knows
    splits: dict[str, SplitData]


def open_source(path: Path) -> SourceData:
    """Open a local source: a CIFAR-100 python tarball, its extracted folder, or a staged folder."""
    path = Path(path).expanduser()
    if path.is_file():
        return read_cifar_tarball(path)
    if path.is_dir():
        if (path / "train.lst").is_file():
            return read_staged_folder(path)
        for folder in (path, path / "cifar-100-python"):
            if all((folder / n).is_file() for n in ("train", "test", "meta")):
                blobs = {n: (folder / n).read_bytes() for n in ("train", "test", "meta")}
                return _cifar_from_pickles(blobs, folder, "cifar-folder")
        raise NotADataset(
            f"{path} is not a dataset: expected train.lst + test.lst with train/ test/ PNGs "
            "(a staged folder) or the cifar-100-python train, test and meta files"
        )
    raise NotADataset(f"no such file or folder: {path}")


def read_cifar_tarball(path: Path) -> SourceData:
    """Read train, test and meta from a cifar-100-python.tar.gz without extracting it to disk."""
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in ("train", "test", "meta") and name not in blobs:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        blobs[name] = handle.read()
    except (tarfile.ReadError, EOFError, zlib.error, OSError) as err:
        if not blobs and not _looks_compressed_or_tar(path):
            raise NotADataset(
                f"{path} is not a tarball (expected cifar-100-python.tar.gz)"
            ) from err
        raise CorruptArchive(
            f"{path} is truncated or damaged ({err}); delete it and download it again"
        ) from err
    missing = [n for n in ("train", "test", "meta") if n not in blobs]
    if missing:
        raise NotADataset(
            f"{path} has no cifar-100-python/{', '.join(missing)}; "
            "is it the CIFAR-100 python version?"
        )
    return _cifar_from_pickles(blobs, path, "tarball")


def _looks_compressed_or_tar(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(512)
    # gzip, bzip2, xz magic numbers, or a ustar header
    return (
        head[:2] == b"\x1f\x8b"
        or head[:3] == b"BZh"
        or head[:6] == b"\xfd7zXZ\x00"
        or (len(head) == 512 and head[257:262] == b"ustar")
    )


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a tarball from an unknown URL runs no code."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's own signature
        if (module, name) not in PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(blob: bytes, what: str, where: Path) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise CorruptArchive(f"{where}: cannot read the {what} pickle ({err})") from err
    if not isinstance(obj, dict):
        raise NotADataset(f"{where}: the {what} pickle is not a dict")
    return obj


def _names(values: Sequence, what: str, where: Path) -> list[str]:
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except (UnicodeDecodeError, TypeError) as err:
        raise NotADataset(f"{where}: bad {what}: {err}") from err


def _cifar_from_pickles(blobs: dict[str, bytes], where: Path, kind: str) -> SourceData:
    meta = _unpickle(blobs["meta"], "meta", where)
    missing = [k.decode() for k in PICKLE_META_KEYS if k not in meta]
    if missing:
        raise NotADataset(f"{where}: meta lacks {', '.join(missing)}; not CIFAR-100?")
    fine_names = _names(meta[b"fine_label_names"], "fine_label_names", where)
    coarse_names = _names(meta[b"coarse_label_names"], "coarse_label_names", where)
    splits: dict[str, SplitData] = {}
    fine_to_coarse: dict[int, int] = {}
    for split in OFFICIAL_SPLITS:
        d = _unpickle(blobs[split], split, where)
        missing = [k.decode() for k in PICKLE_SPLIT_KEYS if k not in d]
        if missing:
            raise NotADataset(f"{where}: {split} lacks {', '.join(missing)}; not CIFAR-100?")
        data = np.asarray(d[b"data"])
        fine = [int(x) for x in d[b"fine_labels"]]
        coarse = [int(x) for x in d[b"coarse_labels"]]
        filenames = _names(d[b"filenames"], "filenames", where)
        n = len(fine)
        if (
            data.dtype != np.uint8
            or data.shape != (n, 3072)
            or len(coarse) != n
            or len(filenames) != n
        ):
            raise NotADataset(
                f"{where}: {split} arrays disagree (data {data.shape} {data.dtype}, "
                f"{n} labels, {len(filenames)} filenames); expected N x 3072 uint8"
            )
        if fine and not (0 <= min(fine) and max(fine) < len(fine_names)):
            raise NotADataset(f"{where}: {split} has fine labels outside meta's names")
        fine_to_coarse.update(zip(fine, coarse, strict=True))
        splits[split] = SplitData(
            filenames=filenames,
            names=[fine_names[f] for f in fine],
            # CIFAR rows are channel-planar (1024 R, 1024 G, 1024 B), each plane row-major
            pixels=lambda i, data=data: data[i].reshape(3, 32, 32).transpose(1, 2, 0),
        )
    vehicle_coarse = {i for i, name in enumerate(coarse_names) if name in VEHICLE_SUPERCLASSES}
    vehicles = sorted(
        (f for f, c in fine_to_coarse.items() if c in vehicle_coarse),
        key=lambda f: (fine_to_coarse[f], f),
    )
    return SourceData(
        kind=kind,
        path=where,
        class_names=fine_names,
        fine_labels={name: i for i, name in enumerate(fine_names)},
        vehicles=[fine_names[f] for f in vehicles],
        splits=splits,
    )


def read_staged_folder(path: Path) -> SourceData:
    """Read a folder of train/ test/ PNGs with train.lst + test.lst (and validation.lst).

    Labels are named by its classes.json, else by an index_map.csv (binary_label -> fine_name).
    A validation split is folded back into train: it was carved from CIFAR-100's train split.
    """
    from PIL import Image, UnidentifiedImageError  # lazy: only staged PNG folders need Pillow

    if (path / CLASSES_FILE).is_file():
        infos = load_classes(path)
        label_names = {c.label: c.name for c in infos}
        fine_labels = {c.name: c.fine_label for c in infos}
    elif (path / "index_map.csv").is_file():
        label_names, fine_labels = _labels_from_index_map(path / "index_map.csv")
    else:
        raise NotADataset(
            f"{path} has .lst files but no classes.json or index_map.csv naming their labels"
        )
    for name in label_names.values():
        if fine_labels.get(name) is None and name in CIFAR100_FINE_NAMES:
            fine_labels[name] = CIFAR100_FINE_NAMES.index(name)

    lists = {"train": ["train", "validation"], "test": ["test"]}
    splits: dict[str, SplitData] = {}
    for split, parts in lists.items():
        files: list[Path] = []
        names: list[str] = []
        for part in parts:
            lst = path / f"{part}.lst"
            if not lst.is_file():
                if part == "validation":
                    continue
                raise NotADataset(f"{path} has no {part}.lst; not a staged dataset")
            for entry in load_lst(lst):
                if entry.label not in label_names:
                    raise NotADataset(f"{lst}: label {entry.label} is not named in {path}")
                file = path / part / entry.path
                if not file.is_file():
                    raise NotADataset(f"{lst} lists {entry.path}, missing from {path / part}")
                files.append(file)
                names.append(label_names[entry.label])

        def pixels(i: int, files: list[Path] = files) -> np.ndarray:
            try:
                with Image.open(files[i]) as im:
                    return np.asarray(im.convert("RGB"))  # the shared PNGs are RGBA, alpha 255
            except (UnidentifiedImageError, OSError) as err:
                raise NotADataset(f"{files[i]} is not a readable image: {err}") from err

        splits[split] = SplitData([f.name for f in files], names, pixels)
    ordered = [label_names[k] for k in sorted(label_names)]
    return SourceData(
        kind="staged-folder",
        path=path,
        class_names=ordered,
        fine_labels=fine_labels,
        vehicles=list(VEHICLE_CLASSES),  # missing ones are then reported as unknown
        splits=splits,
    )


def _labels_from_index_map(path: Path) -> tuple[dict[int, str], dict[str, int | None]]:
    label_names: dict[int, str] = {}
    fine_labels: dict[str, int | None] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                label, name = int(row["binary_label"]), row["fine_name"]
                if label_names.setdefault(label, name) != name:
                    raise ValueError(f"label {label} is both {label_names[label]} and {name}")
                fine_labels[name] = int(row["fine_label"]) if row.get("fine_label") else None
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise NotADataset(f"{path}: cannot map labels to class names ({err})") from err
    return label_names, fine_labels


# ------------------------------ Class selection ------------------------------


def resolve_classes(
    spec: str | Sequence[str], available: Sequence[str], vehicles: Sequence[str] = VEHICLE_CLASSES
) -> list[str]:
    """Class names from a --classes value: comma-separated names, `vehicles` = the ten vehicles.

    The order given is the label order (first name = label 0).
    """
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for token in (t.strip() for t in tokens):
        if not token:
            continue
        expanded = list(vehicles) if token == VEHICLES else [token]
        for name in expanded:
            if name in names:
                raise UnknownClass(f"class {name!r} is given twice in --classes")
            names.append(name)
    if not names:
        raise UnknownClass("--classes is empty; give names like bicycle,motorcycle or `vehicles`")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UnknownClass(
            f"unknown class {', '.join(map(repr, unknown))} for --classes; valid: "
            f"{', '.join(available)} (or `{VEHICLES}`)"
        )
    return names
