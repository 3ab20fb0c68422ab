"""Reading and preparing a table of one's own, against pyarrow's bare read of the same file.

Two CSV files are written to a temporary folder, then read in one process:

- numeric: 1,000,000 rows of 19 float features ``x0``..``x18`` and a float target ``y``
  (4 decimals, standard normal), with 3% of ``x3`` and ``x11`` missing (empty cells).
  ``TableDataModule(path, target="y").setup("fit")`` reads it, drops rows without a target
  (none here), infers regression, splits at random, fits the standardisation on the
  training split and encodes every row; the baseline is ``pyarrow.csv.read_csv(path)``
  with default options.
- text: 200,000 rows of ``text`` (20-40 words drawn from a vocabulary of 3,000 random
  words, Zipf-distributed, as words are) and ``label`` (one of 20 classes).
  ``TextDataModule(path, text="text", target="label").setup("fit")`` reads, splits
  stratified, tokenises into 1- and 2-grams of the first 256 tokens, builds the vocabulary
  on the training split and encodes; the baseline is the bare read plus the tokenising any
  bag-of-n-grams reader must do, ``[with_ngrams(tokenize(t)[:256], 2) for t in texts]``.

Also reported: lregloss's own read step (`lregloss.data.tables.read_table`, which parses
with ``newlines_in_values=True`` so that quoted values may hold newlines) against the bare
read, and in the text table the read and the tokenising alone, as shares of their sum.
Everything runs on the CPU whatever ``--device`` says; pyarrow parses with its own thread
pool, not torch's threads.

    python -m benchmarks.tables [--tiny]
"""

from __future__ import annotations

import string
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import torch

from benchmarks.report import run_standalone
from lregloss.benchmarking.timing import Table, Timing, time_variants
from lregloss.data.labelled_text import TextDataModule
from lregloss.data.table import TableDataModule
from lregloss.data.tables import read_table
from lregloss.data.text import tokenize, with_ngrams

NUMERIC_ROWS = 1_000_000
TEXT_ROWS = 200_000
TINY_ROWS = 2_000
FEATURES = 19
MISSING_COLUMNS = ("x3", "x11")
MISSING_SHARE = 0.03  # of each of MISSING_COLUMNS' cells left empty: imputation has work to do
DECIMALS = 4  # as measured data is written; full float64 precision would double the file
VOCABULARY = 3_000
WORDS_PER_TEXT = (20, 40)  # inclusive range, uniform
CLASSES = 20
MAX_TOKENS = 256  # TextDataModule's default max_tokens
NGRAMS = 2  # TextDataModule's default ngrams
TARGET = 1.5  # setup("fit") <= 1.5x of the bare read (numeric) or of the read + tokenising (text)
BARE_READ = "pyarrow.csv.read_csv"
LREGLOSS_READ = "lregloss.data.tables.read_table"


def write_numeric_csv(path: Path, rows: int, generator: np.random.Generator) -> None:
    """``rows`` rows of ``x0``..``x18`` and ``y``, standard normal, with ``MISSING_COLUMNS`` partly empty."""
    columns = {}
    for name in [*(f"x{i}" for i in range(FEATURES)), "y"]:
        values = np.round(generator.standard_normal(rows), DECIMALS)
        gaps = generator.random(rows) < MISSING_SHARE if name in MISSING_COLUMNS else None
        columns[name] = pa.array(values, mask=gaps)
    pa_csv.write_csv(pa.table(columns), path)


def random_words(count: int, generator: np.random.Generator) -> list[str]:
    """``count`` distinct lowercase words of 3 to 9 letters."""
    words: dict[str, None] = {}
    letters = np.array(list(string.ascii_lowercase))
    while len(words) < count:
        words.setdefault("".join(generator.choice(letters, generator.integers(3, 10))))
    return list(words)


def write_text_csv(path: Path, rows: int, generator: np.random.Generator) -> None:
    """``rows`` rows of ``text`` (random words, Zipf-distributed) and ``label`` (``class_00``..)."""
    words = pa.array(random_words(VOCABULARY, generator))
    frequency = 1 / np.arange(1, VOCABULARY + 1)  # Zipf's law: the k-th word is 1/k as frequent as the first
    lengths = generator.integers(WORDS_PER_TEXT[0], WORDS_PER_TEXT[1] + 1, rows)
    drawn = generator.choice(VOCABULARY, int(lengths.sum()), p=frequency / frequency.sum())
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    texts = pc.binary_join(pa.ListArray.from_arrays(offsets, words.take(pa.array(drawn))), " ")
    labels = pa.array([f"class_{k:02d}" for k in generator.integers(0, CLASSES, rows)])
    pa_csv.write_csv(pa.table({"text": texts, "label": labels}), path)


def tokenised(texts: list[str]) -> list[list[str]]:
    """What any bag-of-n-grams reader of these texts computes: TextDataModule's defaults."""
    return [with_ngrams(tokenize(text)[:MAX_TOKENS], NGRAMS) for text in texts]


def medians_note(timings: dict[str, Timing], rows: int) -> str:
    """Each variant's median time and rows per second, the absolute numbers behind the ratios."""
    return "Medians: " + ", ".join(
        f"{name} {timing.median:.3g} s ({rows / timing.median:,.0f} rows/s)" for name, timing in timings.items()
    ) + "."  # fmt: skip


def numeric_table(path: Path, rows: int, repeats: int, target: float | None, unit: str) -> Table:
    columns = [*(f"x{i}" for i in range(FEATURES)), "y"]
    variants: dict[str, Callable[[], object]] = {
        BARE_READ: lambda: pa_csv.read_csv(path),
        LREGLOSS_READ: lambda: read_table(path, columns),
        'TableDataModule.setup("fit")': lambda: TableDataModule(path=str(path), target="y").setup("fit"),
    }
    timings = time_variants(variants, repeats=repeats, warmup=1)
    megabytes = path.stat().st_size / 1e6
    table = Table(
        f"Numeric table, {rows:,} rows x {FEATURES + 1} columns",
        f"CSV of {megabytes:.3g} MB: {FEATURES} float features and a float target y, {MISSING_SHARE:.0%} of "
        f"{' and '.join(MISSING_COLUMNS)} missing; the module reads, infers regression, splits 80/10/10 at random, "
        f"standardises and imputes; {repeats} rounds after one warm-up.",
        unit=unit,
    )
    bare = timings[BARE_READ]
    table.add('TableDataModule.setup("fit")', timings['TableDataModule.setup("fit")'], bare, target)
    table.add(LREGLOSS_READ, timings[LREGLOSS_READ], bare)
    table.notes.append(medians_note(timings, rows))
    return table


def text_table(path: Path, rows: int, repeats: int, target: float | None, unit: str) -> Table:
    texts = pa_csv.read_csv(path)["text"].to_pylist()
    variants: dict[str, Callable[[], object]] = {
        BARE_READ: lambda: pa_csv.read_csv(path),
        LREGLOSS_READ: lambda: read_table(path, ["text", "label"]),
        "tokenise": lambda: tokenised(texts),
        "read + tokenise": lambda: tokenised(pa_csv.read_csv(path)["text"].to_pylist()),
        'TextDataModule.setup("fit")': lambda: TextDataModule(path=str(path), text="text", target="label").setup("fit"),
    }
    timings = time_variants(variants, repeats=repeats, warmup=1)
    megabytes = path.stat().st_size / 1e6
    table = Table(
        f"Text table, {rows:,} rows",
        f"CSV of {megabytes:.3g} MB: text of {WORDS_PER_TEXT[0]}-{WORDS_PER_TEXT[1]} words from {VOCABULARY:,} "
        f"(Zipf), label of {CLASSES} classes; tokenise is `with_ngrams(tokenize(t)[:{MAX_TOKENS}], {NGRAMS})` over "
        f"every text; the module also splits stratified, builds the vocabulary (min_count 5) and encodes; "
        f"{repeats} rounds after one warm-up.",
        unit=unit,
    )
    baseline = timings["read + tokenise"]
    table.add('TextDataModule.setup("fit")', timings['TextDataModule.setup("fit")'], baseline, target)
    table.add(BARE_READ, timings[BARE_READ], baseline)
    table.add("tokenise", timings["tokenise"], baseline)
    table.add(LREGLOSS_READ, timings[LREGLOSS_READ], timings[BARE_READ])
    table.notes.append(medians_note(timings, rows))
    table.notes.append(
        "Garbage collection is off while a sample runs (`time_variants`); in a training run it is on and adds to "
        "both sides, the baseline's more: it builds every n-gram as a Python string, the module only its tokens."
    )
    return table


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[Table]:
    """The numeric and text tables; ``device`` is not used (reading and preparing run on the CPU).

    ``tiny``: 2,000 rows of each and 2 rounds, for a smoke test; the targets, set for the
    real sizes, are then left out.
    """
    generator = np.random.default_rng(0)
    numeric_rows, text_rows = (TINY_ROWS, TINY_ROWS) if tiny else (NUMERIC_ROWS, TEXT_ROWS)
    # Numeric rounds take about 2 s, text rounds about 10 s: the numeric table affords more of them.
    (numeric_repeats, text_repeats), target, unit = ((2, 2), None, "ms") if tiny else ((5, 3), TARGET, "s")
    with tempfile.TemporaryDirectory() as folder:
        numeric, text = Path(folder) / "numeric.csv", Path(folder) / "text.csv"
        write_numeric_csv(numeric, numeric_rows, generator)
        write_text_csv(text, text_rows, generator)
        return [
            numeric_table(numeric, numeric_rows, numeric_repeats, target, unit),
            text_table(text, text_rows, text_repeats, target, unit),
        ]


if __name__ == "__main__":
    run_standalone(run, __doc__)
