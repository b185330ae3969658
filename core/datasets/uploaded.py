"""A client's own data: a CSV or an NPZ read, checked and packed for the store.

Only numbers pass, each file is read without trusting it, and a file that
cannot be a dataset raises `DatasetFileError` naming the row and column (CSV)
or the array (NPZ) to blame, before anything is kept:

- CSV: a header row, numeric feature columns and a label column (`label`
  unless another is named). Rows are counted as a text editor counts lines:
  the header is row 1.
- NPZ: arrays `x` (N x features, N x steps x features or N x height x width x
  channels) and `y` (N labels or targets), nothing else. Read with
  `allow_pickle=False` always; every member's declared size is checked before
  a byte of it is decompressed, and reading never passes that size, so a small
  archive cannot unpack into gigabytes.

Classification labels may be numbers or names; they become class indices in
sorted order (`ParsedDataset.classes` keeps their names). The packed form
(`pack`/`unpack`) is an NPZ of float32 `x` and the indices or float32 targets,
compressed.

Example:
    >>> limits = UploadLimits(samples=1000, features=100, classes=10, values=10**6)
    >>> data = parse_dataset(b"a,b,label\\n0,1,yes\\n1,0,no\\n0,0,yes\\n1,1,no\\n", limits=limits)
    >>> data.sample_shape, data.classes
    ((2,), ['no', 'yes'])
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

NPZ_MAGIC = b"PK\x03\x04"
NPZ_ARRAYS = ("x", "y")
# Bytes of an .npy member beyond its values: the magic, version and header (padded to 64).
NPY_HEADER_ALLOWANCE = 64 * 1024


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class DatasetFileError(ValueError):
    """A file that cannot be a dataset: `where` names the row and column or the array."""

    def __init__(self, where: str, reason: str, *, kind: str = "invalid-dataset") -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
        self.kind = kind


class DatasetDeleted(Exception):  # noqa: N818 - reads as the event it reports
    """The uploaded dataset a job trains on was deleted before the job ran."""


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The most a dataset may hold (core.settings reads them from the environment)."""

    samples: int
    features: int  # values in one sample
    classes: int
    values: int  # samples x features


@dataclass(frozen=True)
class ParsedDataset:
    """Checked arrays: float32 samples, int32 class indices or float32 targets."""

    x: np.ndarray
    y: np.ndarray
    task: Task
    classes: list[str] | None  # names in index order; None for regression
    content_hash: str  # sha256 of the bytes as sent
    label: str | None  # a CSV's label column; None for an NPZ

    @property
    def format(self) -> str:
        return "csv" if self.label is not None else "npz"

    @property
    def samples(self) -> int:
        return len(self.y)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def target_range(self) -> tuple[float, float] | None:
        if self.task is not Task.REGRESSION:
            return None
        # Float32 targets, shown to the digits float32 holds (0.857, not 0.8569999933).
        return float(f"{self.y.min():.7g}"), float(f"{self.y.max():.7g}")


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_dataset(
    body: bytes,
    *,
    limits: UploadLimits,
    label: str = "label",
    task: Task = Task.CLASSIFICATION,
) -> ParsedDataset:
    """The dataset in `body`, an NPZ (by its magic bytes) or else a CSV; raises
    `DatasetFileError`."""
    column: str | None = None
    if body.startswith(NPZ_MAGIC):
        x, labels = _read_npz(body, limits)
        where = "array y"
    else:
        x, labels = _read_csv(body, label, limits)
        column, where = label, f"column {label!r}"
    _check_size(x, limits, where="file" if column else "array x")
    y, classes = _labels(labels, task, limits, where)
    return ParsedDataset(x, y, task, classes, content_hash(body), column)


# ------------------------------------------------------------------------- CSV


def _read_csv(body: bytes, label: str, limits: UploadLimits) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetFileError(
            "file",
            "neither an NPZ nor a CSV in UTF-8 text (byte "
            f"{error.start} cannot be decoded); send a CSV with a header row or an NPZ",
            kind="unsupported-dataset",
        ) from None
    if "\x00" in text:
        raise DatasetFileError(
            "file", "neither an NPZ nor a CSV (it holds NUL bytes)", kind="unsupported-dataset"
        )
    rows = _rows(text)
    header = [name.strip() for name in next(rows, [])]
    if not any(header):
        raise DatasetFileError("row 1", "the file is empty; a CSV needs a header row")
    if label not in header:
        raise DatasetFileError(
            "row 1",
            f"no label column {label!r}; the header has {_names(header)} "
            "(name the label column with ?label=...)",
        )
    if header.count(label) > 1:
        raise DatasetFileError("row 1", f"the label column {label!r} appears twice")
    table: list[list[str]] = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue  # a blank line, e.g. at the end
        if len(row) != len(header):
            raise DatasetFileError(
                f"row {line}", f"has {len(row)} fields, the header has {len(header)}"
            )
        if len(table) == limits.samples:
            raise DatasetFileError(
                f"row {line}", f"more than the limit of {limits.samples:,} samples"
            )
        table.append(row)
    if not table:
        raise DatasetFileError("row 2", "no data rows below the header")
    if len(header) - 1 > limits.features:
        raise DatasetFileError(
            "row 1",
            f"{len(header) - 1:,} feature columns exceed the limit of {limits.features:,}",
        )
    cells = np.array(table, dtype=str)
    at = header.index(label)
    features = [i for i in range(len(header)) if i != at]
    x = _numbers(cells[:, features], [header[i] for i in features])
    return x.astype(np.float32), np.char.strip(cells[:, at])


def _rows(text: str) -> Iterator[list[str]]:
    """The CSV's rows; a row the csv module cannot split (a stray quote or carriage return,
    a field past its size limit) is a DatasetFileError naming the row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DatasetFileError(f"row {reader.line_num}", f"not valid CSV: {error}") from None
        yield row


def _names(header: list[str]) -> str:
    shown = ", ".join(repr(name) for name in header[:10])
    return shown + (f" and {len(header) - 10} more" if len(header) > 10 else "")


def _numbers(cells: np.ndarray, columns: list[str]) -> np.ndarray:
    """Float64 values of a table of text cells; raises naming the first bad cell."""
    if not columns:
        raise DatasetFileError("row 1", "no feature columns beside the label")
    try:
        values = np.char.strip(cells).astype(np.float64)
    except ValueError:
        row, column = _first(np.vectorize(_not_a_number, otypes=[bool])(cells))
        raise DatasetFileError(
            f"row {row + 2}, column {columns[column]!r}",
            f"{str(cells[row, column])[:40]!r} is not a number",
        ) from None
    if not np.isfinite(values).all():
        row, column = _first(~np.isfinite(values))
        raise DatasetFileError(
            f"row {row + 2}, column {columns[column]!r}",
            f"{str(cells[row, column]).strip()[:40]!r}: NaN and infinite values are refused",
        )
    return values


def _not_a_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return True
    return False


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """The index of the first True in `mask`, in row order."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


# ------------------------------------------------------------------------- NPZ


def _read_npz(body: bytes, limits: UploadLimits) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        members = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise DatasetFileError("file", f"not a readable NPZ: {error}") from None
    names = {name.removesuffix(".npy") for name in members}
    unknown = sorted(names - set(NPZ_ARRAYS))
    if unknown or len(members) != len(names):
        raise DatasetFileError(
            f"array {(unknown or sorted(names))[0]!r}",
            "an NPZ holds arrays x and y (x.npy, y.npy) and nothing else",
        )
    arrays = {}
    for name in NPZ_ARRAYS:
        info = members.get(f"{name}.npy")
        if info is None:
            raise DatasetFileError(f"array {name}", "missing; an NPZ holds arrays x and y")
        # Declared sizes, checked before decompressing; zipfile reads no further than them.
        most = 4 * limits.values + NPY_HEADER_ALLOWANCE if name == "x" else None
        most = most or 8 * limits.samples + NPY_HEADER_ALLOWANCE
        if info.file_size > most:
            raise DatasetFileError(
                f"array {name}",
                f"declares {info.file_size:,} bytes unpacked, over the limit of {most:,}",
                kind="dataset-too-large",
            )
        arrays[name] = _read_npy(archive, info, name)
    return _checked_x(arrays["x"]), _checked_y(arrays["y"], len(arrays["x"]))


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    try:
        with archive.open(info) as member:
            raw = io.BytesIO(member.read(info.file_size))
        version = np.lib.format.read_magic(raw)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(raw)
        if dtype.hasobject:
            raise DatasetFileError(
                f"array {name}", "holds Python objects (pickled); send numbers", kind="pickled"
            )
        raw.seek(0)
        array: np.ndarray = np.lib.format.read_array(raw, allow_pickle=False)
    except DatasetFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetFileError(f"array {name}", f"not a readable .npy: {error}") from None
    if array.shape != shape:
        raise DatasetFileError(f"array {name}", "its data does not fill its declared shape")
    return array


def _checked_x(x: np.ndarray) -> np.ndarray:
    if x.ndim not in (2, 3, 4):
        raise DatasetFileError(
            "array x",
            f"has shape {list(x.shape)}; send N x features, N x steps x features or "
            "N x height x width x channels",
        )
    if x.dtype.kind not in "biuf":
        raise DatasetFileError("array x", f"holds {x.dtype} values; send numbers")
    values = x.astype(np.float64)
    if not np.isfinite(values).all():
        index = _first(~np.isfinite(values))
        raise DatasetFileError("array x", f"holds NaN or infinite values, first at {list(index)}")
    return values.astype(np.float32)


def _checked_y(y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetFileError("array y", f"has shape {list(y.shape)}; send one label per sample")
    if len(y) != n:
        raise DatasetFileError("array y", f"holds {len(y):,} labels for the {n:,} samples of x")
    if y.dtype.kind not in "biufU":
        raise DatasetFileError("array y", f"holds {y.dtype} values; send numbers or names")
    return y


# --------------------------------------------------------------------- checks


def _check_size(x: np.ndarray, limits: UploadLimits, *, where: str) -> None:
    samples, features = len(x), math.prod(x.shape[1:])
    if samples > limits.samples:
        raise DatasetFileError(where, f"{samples:,} samples exceed the limit of {limits.samples:,}")
    if features > limits.features:
        raise DatasetFileError(
            where, f"{features:,} values per sample exceed the limit of {limits.features:,}"
        )
    if samples * features > limits.values:
        raise DatasetFileError(
            where,
            f"{samples:,} samples x {features:,} values exceed the limit of "
            f"{limits.values:,} values",
        )
    if samples < 4:
        raise DatasetFileError(where, f"{samples} samples; send at least 4")


def _labels(
    labels: np.ndarray, task: Task, limits: UploadLimits, where: str
) -> tuple[np.ndarray, list[str] | None]:
    """Class indices and their names, or float32 targets; raises naming `where`."""
    if labels.dtype.kind == "U":
        empty = np.char.str_len(labels) == 0
        if empty.any():
            row = int(np.argmax(empty))
            raise DatasetFileError(_at(where, row), "the label is empty")
    numeric = _as_numbers(labels)
    if task is Task.REGRESSION:
        if numeric is None:
            row = int(np.argmax(np.vectorize(_not_a_number, otypes=[bool])(labels)))
            raise DatasetFileError(
                _at(where, row), f"{str(labels[row])[:40]!r}: a regression's targets are numbers"
            )
        if not np.isfinite(numeric).all():
            row = int(np.argmax(~np.isfinite(numeric)))
            raise DatasetFileError(_at(where, row), "NaN and infinite targets are refused")
        if numeric.min() == numeric.max():
            raise DatasetFileError(where, f"every target is {numeric[0]:g}: nothing to learn")
        return numeric.astype(np.float32), None
    if numeric is not None and not np.isfinite(numeric).all():
        row = int(np.argmax(~np.isfinite(numeric)))
        raise DatasetFileError(_at(where, row), "NaN and infinite labels are refused")
    values = numeric if numeric is not None else labels
    found, indices, counts = np.unique(values, return_inverse=True, return_counts=True)
    if len(found) < 2:
        raise DatasetFileError(where, f"one class ({_name(found[0])}) only: nothing to tell apart")
    if len(found) > limits.classes:
        raise DatasetFileError(
            where,
            f"{len(found):,} classes exceed the limit of {limits.classes} (numbers are class "
            "labels unless task=regression)",
        )
    if counts.min() < 2:
        lonely = _name(found[int(np.argmin(counts))])
        raise DatasetFileError(where, f"class {lonely} has one sample; each needs at least 2")
    return indices.astype(np.int32).reshape(-1), [_name(value) for value in found]


def _as_numbers(labels: np.ndarray) -> np.ndarray | None:
    if labels.dtype.kind != "U":
        return labels.astype(np.float64)
    try:
        return labels.astype(np.float64)
    except ValueError:
        return None


def _name(value: object) -> str:
    """A class's name: `3` for 3.0, the text itself for a name."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _at(where: str, index: int) -> str:
    """`where` narrowed to one sample: a CSV's row (header row 1) or an array's index."""
    if where.startswith("array"):
        return f"{where}[{index}]"
    return f"row {index + 2}, {where}"


# ---------------------------------------------------------------------- packed


def pack(data: ParsedDataset) -> bytes:
    """The arrays as the store keeps them: a compressed NPZ of `x` and `y`."""
    out = io.BytesIO()
    np.savez_compressed(out, x=data.x, y=data.y)
    return out.getvalue()


def unpack(packed: bytes) -> tuple[np.ndarray, np.ndarray]:
    """`x` and `y` from `pack`'s bytes (never unpickling)."""
    with np.load(io.BytesIO(packed), allow_pickle=False) as arrays:
        return arrays["x"], arrays["y"]
