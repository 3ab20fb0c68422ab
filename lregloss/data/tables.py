"""Reading a table of one's own: CSV (plain or compressed) and Parquet, with pyarrow.

pyarrow rather than pandas: its CSV reader parses blocks in parallel threads and yields
typed columns that convert to numpy without a copy, it reads Parquet natively (pandas calls
it for that too), and it is one dependency where pandas would be two. Columns are checked
against the header before anything is parsed, so that a missing column is named with the
ones that exist.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")  # each optionally .gz, .bz2, .xz or .zst (pyarrow decompresses)
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def may_quote_newlines(path: Path) -> bool:
    """False where no value of an uncompressed CSV can hold a line break: no ``"`` after its first line.

    A quoted value spanning lines closes with a quote after a line break; without one,
    pyarrow may split the file into blocks at any line break and parse them in parallel.
    """
    if path.suffix.lower() in COMPRESSION_SUFFIXES or path.stat().st_size == 0:
        return True
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = data.find(b"\n")
        return end >= 0 and data.find(b'"', end + 1) >= 0


def _csv_options(path: Path, newlines_in_values: bool | None = None) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions]:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    delimiter = "\t" if suffixes and suffixes[-1] == ".tsv" else ","
    # Quoted values may hold newlines (review texts do); pyarrow then parses them serially.
    if newlines_in_values is None:
        newlines_in_values = may_quote_newlines(path)
    return pa_csv.ReadOptions(), pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines_in_values)


def existing_file(path: str, hint: str = "") -> Path:
    """``path`` as a Path, checked to be a file.

    Raises:
        FileNotFoundError: it is not; the message starts with the argument's name, ``path``,
            and ends with ``hint`` (another way to give the data, if any).
    """
    found = Path(path)
    if not found.is_file():
        raise FileNotFoundError(
            f"path {path!r} is not a file (looked at {found.resolve()}); give a CSV or Parquet file{hint}"
        )
    return found


def _unreadable(path: Path, error: Exception) -> ValueError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return ValueError(f"{path} cannot be read as a {'Parquet' if is_parquet(path) else 'CSV'} table ({reason})")


def table_columns(path: Path) -> list[str]:
    """The column names of a table file, read from its header (CSV) or schema (Parquet) alone.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not a table pyarrow can read; the message names it.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file (looked at {path.resolve()}); give a CSV or Parquet file")
    try:
        if is_parquet(path):
            return list(pa_parquet.read_schema(path).names)
        read_options, parse_options = _csv_options(path, newlines_in_values=True)  # the header alone: no scan
        return list(pa_csv.open_csv(path, read_options=read_options, parse_options=parse_options).schema.names)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(path, error) from error


def check_columns(path: Path, available: Sequence[str], wanted: Sequence[str], key: str) -> None:
    """Raise unless every column of ``wanted`` (given by config ``key``) is in ``available``.

    Raises:
        ValueError: naming the file, the key, the missing columns and the ones there are.
    """
    missing = [column for column in wanted if column not in available]
    if missing:
        raise ValueError(
            f"{key}: {path} has no column {', '.join(repr(c) for c in missing)}; its columns are "
            f"{', '.join(repr(c) for c in available)}"
        )


def read_table(path: Path, columns: Sequence[str]) -> pa.Table:
    """The named columns of a CSV (plain or compressed) or Parquet file, typed by pyarrow's inference.

    CSV: numbers become int64 or double, ``true``/``false`` bool, the rest strings (an empty
    string stays one); empty, ``NA``, ``null`` and ``NaN`` cells of numeric columns are
    missing values (null).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file cannot be parsed (the message names it and pyarrow's reason).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file (looked at {path.resolve()}); give a CSV or Parquet file")
    try:
        if is_parquet(path):
            return pa_parquet.read_table(path, columns=list(columns))
        read_options, parse_options = _csv_options(path)
        convert_options = pa_csv.ConvertOptions(include_columns=list(columns))
        return pa_csv.read_csv(path, read_options=read_options, parse_options=parse_options, convert_options=convert_options)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(path, error) from error


def is_numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def is_categorical(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)


def missing_mask(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a value is missing: null, NaN, or an empty (or blank) string."""
    missing = pc.is_null(column, nan_is_null=True)
    if is_categorical(column.type):
        missing = pc.or_(missing, pc.equal(pc.utf8_trim_whitespace(pc.cast(column, pa.string())), ""))
    return pc.fill_null(missing, True)
