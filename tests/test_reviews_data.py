"""The reviews recipe (data=text on the shipped reviews) and its text features, on a small CSV in the real column format."""

import csv
import gzip
import inspect
import subprocess
import sys
from collections import Counter

import pytest
import torch
from omegaconf import OmegaConf

from lregloss.app.recipes import recipe_data
from lregloss.data import files
from lregloss.data.files import ChecksumMismatchError, shipped_path, verify_sha256
from lregloss.data.labelled_text import TextDataModule
from lregloss.data.protocol import TaskDataModule
from lregloss.data.splits import stratified_split
from lregloss.data.text import PAD, NgramBags, tokenize, with_ngrams
from lregloss.tasks import TaskKind

from conftest import CONF, ROOT, SHARED_DATA

HEADER = [
    "",
    "Clothing ID",
    "Age",
    "Title",
    "Review Text",
    "Rating",
    "Recommended IND",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    "Class Name",
]
MOOD = {1: "awful", 2: "poor", 3: "okay", 4: "good", 5: "great"}
PER_RATING = 10  # 8 train, 1 val, 1 test per rating at 80/10/10


def review_row(index: int, title: str, text: str, rating) -> list:
    return [index, 1000 + index, 30, title, text, rating, 1, 0, "General", "Tops", "Knits"]


def write_csv(path, rows, header=HEADER) -> str:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def reviews_csv(tmp_path):
    """50 reviews, 10 per rating, each with its own marker word docN; 3 rows without text."""
    rows = []
    for n in range(5 * PER_RATING):
        rating = n % 5 + 1
        text = f"doc{n} this top is {MOOD[rating]}, \"really\" {MOOD[rating]}!\nwould buy again? maybe"
        rows.append(review_row(n, "Nice top" if n % 3 else "", text, rating))
    rows.append(review_row(900, "Lost text", "", 5))
    rows.append(review_row(901, "Blank text", "   ", 1))
    rows.append(review_row(902, "missing900 no text", "", 3))
    return write_csv(tmp_path / "reviews.csv", rows)


def reviews_data(**arguments) -> TextDataModule:
    """The data module of ``data=reviews`` (conf/data/reviews.yaml), with ``arguments`` overriding its config."""
    return recipe_data("reviews", **arguments)


def marker(text: str) -> str:
    return next(token for token in tokenize(text) if token.startswith("doc"))


def test_tokenize_keeps_clitics_and_marks():
    assert tokenize("Don't buy it!! Size 8? NO.") == ["don't", "buy", "it", "!", "!", "size", "8", "?", "no"]
    assert tokenize("It\u2019s fine") == ["it's", "fine"]


def test_with_ngrams_appends_each_size():
    assert with_ngrams(["a", "b", "c"], 1) == ["a", "b", "c"]
    assert with_ngrams(["a", "b", "c"], 3) == ["a", "b", "c", "a b", "b c", "a b c"]
    assert with_ngrams(["a"], 2) == ["a"]


def reference_vocabulary(features: list[list[str]], min_count: int, max_vocab: int | None) -> list[str]:
    """The vocabulary written out on strings: count, keep >= min_count, rank by (-count, string), cap."""
    counts = Counter(feature for document in features for feature in document)
    kept = sorted((f for f, c in counts.items() if c >= min_count), key=lambda f: (-counts[f], f))
    return [PAD, *kept[: None if max_vocab is None else max_vocab - 1]]


def reference_ids(features: list[list[str]], vocabulary: list[str]) -> list[list[int]]:
    """Each document's known features as ids, in with_ngrams order, unseen ones dropped."""
    index = {feature: i for i, feature in enumerate(vocabulary)}
    return [[index[f] for f in document if f in index] for document in features]


def padded(rows: list[list[int]]) -> list[list[int]]:
    width = max([len(row) for row in rows] + [1])
    return [row + [0] * (width - len(row)) for row in rows]


def test_vocabulary_counts_thresholds_and_order():
    bags = NgramBags.of(["b a c", "b a", "b d"], max_tokens=None, n=1)
    assert bags.vocabulary([0, 1, 2], min_count=1, max_vocab=None)[0] == [PAD, "b", "a", "c", "d"]
    assert bags.vocabulary([0, 1, 2], min_count=2, max_vocab=None)[0] == [PAD, "b", "a"]
    assert bags.vocabulary([0, 1, 2], min_count=1, max_vocab=3)[0] == [PAD, "b", "a"]
    assert bags.vocabulary([2], min_count=1, max_vocab=None)[0] == [PAD, "b", "d"]  # the given documents only


def test_encode_drops_unknown_features_and_pads_with_zero():
    bags = NgramBags.of(["x b zzz a", "zzz", "a", ""], max_tokens=None, n=1)
    ids = bags.encode(bags.ids_in([PAD, "a", "b", "x"]))
    assert ids.dtype == torch.int64
    assert ids.tolist() == [[3, 2, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(("n", "max_tokens", "min_count", "max_vocab"), [(2, 256, 2, None), (3, None, 1, None), (1, 4, 1, 20), (2, 6, 1, 50)])
def test_integer_ngrams_give_the_vocabulary_and_ids_of_the_strings(n, max_tokens, min_count, max_vocab):
    generator = torch.Generator().manual_seed(n)
    words = ["a", "b", "c", "don't", "!", "?", "x1", "it's"]
    texts = [
        " ".join(words[int(i)] for i in torch.randint(len(words), (int(length),), generator=generator))
        for length in torch.randint(0, 12, (60,), generator=generator)
    ]
    train = sorted(torch.randperm(60, generator=generator)[:45].tolist())
    features = [with_ngrams(tokenize(text)[:max_tokens], n) for text in texts]
    expected = reference_vocabulary([features[i] for i in train], min_count, max_vocab)

    bags = NgramBags.of(texts, max_tokens, n)
    vocabulary, ids = bags.vocabulary(train, min_count, max_vocab)
    assert vocabulary == expected
    assert bags.encode(ids).tolist() == padded(reference_ids(features, expected))
    assert torch.equal(bags.encode(bags.ids_in(expected)), bags.encode(ids))  # a new file, by the strings
    for order, level in enumerate(bags.orders, start=1):
        spelled = bags.spell(order, level.codes)
        assert spelled == [f for document in features for f in document if f.count(" ") == order - 1]


def test_documents_without_tokens_encode_as_padding():
    bags = NgramBags.of(["", "...", ""], max_tokens=None, n=3)
    vocabulary, ids = bags.vocabulary([0, 1], min_count=1, max_vocab=None)
    assert vocabulary == [PAD]
    assert bags.encode(ids).tolist() == [[0], [0], [0]]


def test_split_is_stratified_disjoint_and_seeded(reviews_csv):
    first = reviews_data(path=reviews_csv, seed=0, min_count=1)
    first.setup("fit")
    again = reviews_data(path=reviews_csv, seed=0, min_count=1)
    again.setup("fit")
    other = reviews_data(path=reviews_csv, seed=1, min_count=1)
    other.setup("fit")

    rows = first.split_indices
    assert {name: len(rows[name]) for name in ("train", "val", "test")} == {"train": 40, "val": 5, "test": 5}
    for name, per_level in (("train", 8), ("val", 1), ("test", 1)):
        assert torch.bincount(first.labels[rows[name]], minlength=5).tolist() == [per_level] * 5
    assert sorted(torch.cat(list(rows.values())).tolist()) == list(range(50))
    for name in rows:
        assert torch.equal(rows[name], again.split_indices[name])
    assert not torch.equal(rows["test"], other.split_indices["test"])


def test_rows_without_review_text_are_dropped(reviews_csv):
    data = reviews_data(path=reviews_csv)
    data.setup("fit")
    assert len(data.texts) == 50 == len(data.labels)
    assert not any(text.startswith(("Lost text", "Blank text", "missing900")) for text in data.texts)
    assert data.texts[1] == 'Nice top\ndoc1 this top is poor, "really" poor!\nwould buy again? maybe'
    assert data.texts[0].startswith("\ndoc0 ")  # empty title
    assert data.labels[:5].tolist() == [0, 1, 2, 3, 4]


def test_vocabulary_comes_from_the_training_split_only(reviews_csv):
    data = reviews_data(path=reviews_csv, min_count=1)
    data.setup("fit")
    vocabulary = set(data.vocabulary)
    for name, present in (("train", True), ("val", False), ("test", False)):
        for row in data.split_indices[name].tolist():
            assert (marker(data.texts[row]) in vocabulary) is present
    assert data.vocabulary[0] == PAD
    assert "this top" in vocabulary and "good !" in vocabulary
    assert data.input_size == len(data.vocabulary)


def test_min_count_and_max_vocab_shrink_the_vocabulary(reviews_csv):
    data = reviews_data(path=reviews_csv, min_count=2, max_vocab=10)
    data.setup("fit")
    assert len(data.vocabulary) == 10
    assert not any(token.startswith("doc") for token in data.vocabulary)


def test_task_and_batches(reviews_csv):
    data = reviews_data(path=reviews_csv, batch_size=16, min_count=1)
    data.setup("fit")
    assert isinstance(data, TaskDataModule)
    assert data.task.kind is TaskKind.ORDINAL and data.task.size == 5
    assert data.task.names == ("1", "2", "3", "4", "5")
    assert data.task.class_counts == (8, 8, 8, 8, 8)

    batches = list(data.train_dataloader())
    assert [len(level) for _, level in batches] == [16, 16, 8]
    seen = []
    for ids, level in batches:
        assert ids.dtype == torch.int64 and level.dtype == torch.int64
        assert ids.ndim == 2 and ids.shape[0] == level.shape[0]
        assert 0 <= int(level.min()) and int(level.max()) <= 4
        assert ids.min() >= 0 and ids.max() < data.input_size
        assert (ids[:, -1] != 0).any()  # trimmed to the longest document of the batch
        seen += level.tolist()
    assert Counter(seen) == Counter({level: 8 for level in range(5)})

    ids, level = next(iter(data.test_dataloader()))
    assert len(level) == 5
    rows = data.split_indices["test"].tolist()
    assert level.tolist() == data.labels[rows].tolist()
    index = {feature: i for i, feature in enumerate(data.vocabulary)}
    first = [index[f] for f in with_ngrams(tokenize(data.texts[rows[0]]), 2) if f in index]
    assert ids[0, : len(first)].tolist() == first and not ids[0, len(first) :].any()


def test_training_batches_are_shuffled_by_seed_and_epoch(reviews_csv):
    data = reviews_data(path=reviews_csv, batch_size=40, min_count=1)
    data.setup("fit")

    def first_batch(seed: int, epoch: int) -> torch.Tensor:
        torch.manual_seed(seed)  # the run's seed, which the shuffle takes from torch.initial_seed()
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)  # as Lightning does at the start of each epoch
        torch.rand(3)  # other draws from the global generator do not move the order
        return next(iter(loader))[1]

    first = first_batch(seed=0, epoch=0)
    assert sorted(first.tolist()) != first.tolist()
    assert torch.equal(first, first_batch(seed=0, epoch=0))
    assert not torch.equal(first, first_batch(seed=0, epoch=1))
    assert not torch.equal(first, first_batch(seed=1, epoch=0))
    fixed = next(iter(data.val_dataloader()))[1]
    assert torch.equal(fixed, next(iter(data.val_dataloader()))[1])


def test_max_tokens_truncates_before_ngrams(reviews_csv):
    data = reviews_data(path=reviews_csv, max_tokens=2, min_count=1)
    data.setup("fit")
    assert data.datasets["train"].tensors[0].shape[1] == 3  # 2 tokens and their bigram
    assert "this top" not in data.vocabulary


def test_setup_runs_once(reviews_csv):
    data = reviews_data(path=reviews_csv)
    data.setup("fit")
    vocabulary = data.vocabulary
    data.setup("test")
    assert data.vocabulary is vocabulary


@pytest.mark.parametrize(
    "missing, message",
    [(("Title", "Rating"), r"target: .*partial\.csv has no column 'Rating'; its columns are ''"),
     (("Title",), r"text: .*partial\.csv has no column 'Title'")],
)  # fmt: skip
def test_missing_columns_name_the_file_and_columns(tmp_path, missing, message):
    header = [c for c in HEADER if c not in missing]
    path = write_csv(tmp_path / "partial.csv", [[0] * len(header)], header=header)
    with pytest.raises(ValueError, match=message):
        reviews_data(path=path).setup("fit")


@pytest.mark.parametrize("rating", ["6", "0", "4.5", "five"])
def test_bad_rating_names_the_file_and_row(tmp_path, rating):
    rows = [review_row(n, "t", f"text {n}", 5) for n in range(4)]
    rows.insert(2, review_row(7, "t", "bad rating", rating))
    path = write_csv(tmp_path / "ratings.csv", rows)
    with pytest.raises(ValueError, match=rf"ratings\.csv, row 3: Rating '{rating}' is not one of the levels 1, 2, 3, 4, 5"):
        reviews_data(path=path).setup("fit")


def test_a_row_without_a_rating_is_dropped(tmp_path):
    rows = [review_row(n, "t", f"text {n} {MOOD[n % 5 + 1]}", n % 5 + 1) for n in range(50)]
    rows.insert(2, review_row(7, "t", "no rating", ""))
    data = reviews_data(path=write_csv(tmp_path / "ratings.csv", rows), min_count=1)
    data.setup("fit")
    assert len(data.texts) == 50 and not any("no rating" in text for text in data.texts)


def test_gzip_csv_is_read(tmp_path, reviews_csv):
    packed = tmp_path / "reviews.csv.gz"
    packed.write_bytes(gzip.compress(open(reviews_csv, "rb").read()))
    data = reviews_data(path=str(packed))
    data.setup("fit")
    assert len(data.texts) == 50


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"ngrams": 0}, "ngrams"),
        ({"min_count": 0}, "min_count"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_vocab": 1}, "max_vocab"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"),
        ({"num_workers": -1}, "num_workers"),
    ],
)
def test_bad_arguments_are_refused_eagerly(arguments, name):
    with pytest.raises(ValueError, match=name):
        TextDataModule(path="reviews.csv", **arguments)


def test_stratified_split_rounds_per_level():
    levels = torch.tensor([0] * 20 + [1] * 7)
    val, test, train = stratified_split(levels, (0.1, 0.2), seed=3)
    assert (len(val), len(test), len(train)) == (2 + 1, 4 + 1, 14 + 5)
    assert torch.equal(torch.cat([val, test, train]).sort().values, torch.arange(27))


def test_checksum_mismatch_names_the_file_and_the_fix(monkeypatch):
    monkeypatch.setitem(files.SHIPPED_SHA256, "womens_clothing_reviews.csv.gz", "0" * 64)
    with pytest.raises(ChecksumMismatchError, match=r"womens_clothing_reviews\.csv\.gz has sha256 \w+, expected 0{64}.*Reinstall"):
        reviews_data().setup("fit")


def test_verify_sha256_passes_a_matching_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    verify_sha256(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "use your own")
    with pytest.raises(ValueError, match="f.bin.*or use your own"):
        verify_sha256(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ae", "use your own")


def test_shipped_data_loads_with_the_documented_sizes():
    data = reviews_data()
    data.setup("fit")
    assert len(data.texts) == 22_641
    sizes = {name: len(rows) for name, rows in data.split_indices.items()}
    assert sizes == {"train": 18_113, "val": 2_264, "test": 2_264}
    assert torch.bincount(data.labels).tolist() == [821, 1549, 2823, 4908, 12540]
    assert sum(data.task.class_counts) == 18_113
    assert data.input_size == len(data.vocabulary) == 31_952


def test_shipped_file_matches_the_source_csv():
    source = SHARED_DATA / "reviews" / "womens_clothing_reviews.csv"
    if not source.exists():
        pytest.skip(f"{source} is absent")
    with open(source, newline="", encoding="utf-8") as handle:
        expected = [[row[""], row["Title"], row["Review Text"], row["Rating"]] for row in csv.DictReader(handle)]
    with gzip.open(shipped_path("womens_clothing_reviews.csv.gz"), "rt", newline="", encoding="utf-8") as handle:
        shipped = list(csv.reader(handle))
    assert shipped[0] == ["", "Title", "Review Text", "Rating"]
    assert shipped[1:] == expected


@pytest.mark.parametrize(
    "config, target",
    [("data/text.yaml", TextDataModule), ("model/bag_of_ngrams.yaml", "lregloss.models.text.BagOfNgrams")],
)
def test_config_repeats_the_code_defaults(config, target):
    if isinstance(target, str):
        from hydra.utils import get_class

        target = get_class(target)
    values = OmegaConf.to_container(OmegaConf.load(CONF / config))
    defaults = inspect.signature(target).parameters
    for key, value in values.items():
        if not key.startswith("_") and value != "???":  # ???: what the user must give
            assert value == defaults[key].default, key
    if target is TextDataModule:
        assert {key for key in values if not key.startswith("_")} == set(defaults)


def test_the_reviews_recipe_sets_only_arguments_of_the_text_module():
    values = OmegaConf.to_container(OmegaConf.load(CONF / "data" / "reviews.yaml"))
    assert values.pop("_target_") == "lregloss.data.labelled_text.TextDataModule"
    assert set(values) == set(inspect.signature(TextDataModule).parameters)


def test_baseline_script_reports_both_splits(reviews_csv):
    pytest.importorskip("sklearn")
    command = [sys.executable, "scripts/baseline_reviews.py", "--path", reviews_csv, "--C", "1", "10"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rows: train 40, val 5, test 5" in result.stdout
    lines = [line.split() for line in result.stdout.splitlines() if line.strip().startswith(("1 ", "10 "))]
    assert len(lines) == 2
    for line in lines:
        assert all(0 <= float(value) <= 4 for value in line[1:5])
    assert sum("<- best val acc" in line for line in result.stdout.splitlines()) == 1
