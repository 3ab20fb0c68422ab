"""data=table and data=text: one's own CSV, gzip CSV and Parquet files through the real entry point."""

from __future__ import annotations

import csv
import gzip
import logging
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest
import torch

from lregloss.app.predict import main as predict_main
from lregloss.app.train import run, train
from lregloss.data import features as features_module
from lregloss.data.features import FeatureEncoder
from lregloss.data.labelled_text import TextDataModule
from lregloss.data.splits import shuffled_split
from lregloss.data.table import TableDataModule
from lregloss.tasks import TaskKind

FAST = [
    "trainer.max_epochs=2",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "~callbacks.rich_progress_bar",
    "scheduler=none",
    "data.batch_size=32",
]
CITIES = ("lyon", "nice", "paris")
QUEUES = ("billing", "login", "refund", "shipping")


def house_rows(count: int = 200, seed: int = 0) -> list[dict]:
    """Houses whose price is linear in area, rooms and city; every 25th area is missing."""
    chooser = random.Random(seed)
    rows = []
    for index in range(count):
        area, rooms, city = chooser.uniform(30, 200), chooser.randint(1, 5), CITIES[index % 3]
        price = 3 * area + 10 * rooms + {"lyon": 50, "nice": 70, "paris": 100}[city] + chooser.gauss(0, 5)
        rows.append({
            "area": "" if index % 25 == 0 else f"{area:.1f}", "rooms": rooms, "city": city,
            "price": f"{price:.2f}", "size": "big" if area > 100 else "small", "stars": 1 + int(area // 60),
            "garden": int(area > 80), "garage": int(rooms > 2), "split": ("train", "train", "train", "val", "test")[index % 5],
        })  # fmt: skip
    return rows


def write_csv(path, rows: list[dict], columns: list[str] | None = None):
    columns = columns or list(rows[0])
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def ticket_rows(count: int = 240, seed: int = 0) -> list[dict]:
    chooser = random.Random(seed)
    filler = "please help me with my account order today thanks".split()
    rows = []
    for index in range(count):
        queue = QUEUES[index % 4]
        rows.append({
            "subject": f"{queue} issue" if index % 2 else "", "body": " ".join(chooser.choices(filler, k=6) + [queue]),
            "queue": queue, "urgent": int(index % 3 == 0), "angry": int(index % 4 == 1),
        })  # fmt: skip
    return rows


def datamodule(**arguments) -> TableDataModule:
    data = TableDataModule(**arguments)
    data.setup("fit")
    return data


@pytest.fixture
def houses(tmp_path):
    return write_csv(tmp_path / "houses.csv", house_rows())


@pytest.mark.parametrize(
    "arguments, kind, size, names",
    [
        ({"target": "price"}, TaskKind.REGRESSION, 1, ("price",)),
        ({"target": "size"}, TaskKind.MULTICLASS, 2, ("big", "small")),
        ({"target": "rooms"}, TaskKind.MULTICLASS, 5, ("1", "2", "3", "4", "5")),
        ({"target": "rooms", "task": "regression"}, TaskKind.REGRESSION, 1, ("rooms",)),
        ({"target": ["garden", "garage"]}, TaskKind.MULTILABEL, 2, ("garden", "garage")),
        ({"target": "stars", "task": "ordinal"}, TaskKind.ORDINAL, 4, ("1", "2", "3", "4")),
        ({"target": "size", "levels": ["small", "big"]}, TaskKind.ORDINAL, 2, ("small", "big")),
    ],
)
def test_the_task_is_inferred_from_the_target_and_overridable(houses, arguments, kind, size, names):
    data = datamodule(path=str(houses), **arguments)
    assert (data.task.kind, data.task.size, data.task.names) == (kind, size, names)
    if kind in (TaskKind.MULTICLASS, TaskKind.ORDINAL):
        assert sum(data.task.class_counts) == len(data.datasets["train"])


def test_csv_gzip_csv_and_parquet_give_the_same_features(tmp_path):
    rows = house_rows()
    plain = write_csv(tmp_path / "houses.csv", rows)
    packed = write_csv(tmp_path / "houses.csv.gz", rows)
    table = pa.table({name: [row[name] for row in rows] for name in rows[0]})
    table = table.set_column(0, "area", pa.array([float(v) if v else None for v in table["area"].to_pylist()]))
    table = table.set_column(3, "price", pa.array([float(v) for v in table["price"].to_pylist()]))
    pa_parquet.write_table(table, tmp_path / "houses.parquet")
    loaded = [datamodule(path=str(path), target="price") for path in (plain, packed, tmp_path / "houses.parquet")]
    for other in loaded[1:]:
        for split in ("train", "val", "test"):
            for mine, theirs in zip(loaded[0].datasets[split].tensors, other.datasets[split].tensors):
                assert torch.allclose(mine, theirs)


def test_features_are_standardised_one_hot_and_imputed_on_the_training_split(houses, caplog):
    with caplog.at_level(logging.INFO, logger="lregloss.data.table"):
        data = datamodule(path=str(houses), target="price", features=["area", "rooms", "city"])
    encoder = data.encoder
    assert encoder.numeric == ["area", "rooms"] and encoder.categories == {"city": list(CITIES)}
    assert data.input_size == 5
    train = data.datasets["train"].tensors[0]
    assert torch.allclose(train[:, :2].mean(dim=0), torch.zeros(2), atol=1e-5)  # imputed rows sit at the mean
    assert torch.equal(train[:, 2:].sum(dim=1), torch.ones(len(train)))  # one category each
    assert "imputed 8 missing values (area 8)" in caplog.text
    assert "task regression (1 target) from price: real values" in caplog.text


def test_an_unseen_or_missing_category_encodes_as_zeros_and_the_encoder_round_trips():
    table = pa.table({"x": [1.0, 2.0, 3.0, None], "colour": ["red", "blue", "red", "green"]})
    encoder, _ = FeatureEncoder.fit_encode(table, ["x", "colour"], "t.csv", 10, parts=[np.arange(3), np.array([3])])
    encoded = encoder.encode(pa.table({"x": [2.0, None], "colour": ["green", None]}))
    assert encoded.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert encoder.missing == {"x": 1, "colour": 1}
    again = FeatureEncoder.from_state_dict(encoder.state_dict())
    assert torch.equal(again.encode(table), encoder.encode(table))


@pytest.mark.parametrize("block_rows", [128, 8192])
def test_fit_encode_standardises_with_the_training_rows_moments_in_one_pass(block_rows, monkeypatch):
    """Against numpy on the training rows: NaN and null both missing, several chunks and blocks, ints, booleans, text."""
    monkeypatch.setattr(features_module, "BLOCK_ROWS", block_rows)
    generator = np.random.default_rng(0)
    real = generator.normal(1e6, 3.0, 1000)  # a large mean: centring happens in float64
    real[generator.random(1000) < 0.05] = np.nan  # NaN, as Parquet keeps it
    real[:10] = np.nan  # the first record batch's first values missing
    chunks = [pa.array(real[:400], from_pandas=False), pa.array(real[400:], mask=np.arange(600) % 50 == 0)]
    colours = generator.choice(["red", "green", "blue"], 1000)
    table = pa.table({
        "real": pa.chunked_array(chunks),
        "count": pa.chunked_array([pa.array(generator.integers(0, 9, 500)), pa.array(generator.integers(0, 9, 500))]),
        "flag": pa.array(generator.random(1000) < 0.3),
        "colour": pa.array(colours),
    })  # fmt: skip
    order = generator.permutation(1000)
    parts = [np.sort(order[:700]), np.sort(order[700:850]), np.sort(order[850:])]
    encoder, features = FeatureEncoder.fit_encode(table, ["real", "count", "flag", "colour"], "t.parquet", 10, parts)
    assert [len(part) for part in features] == [700, 150, 150]
    train = parts[0]
    for position, name in enumerate(["real", "count", "flag"]):
        values = table[name].to_numpy().astype(np.float64) if name != "real" else np.concatenate(
            [chunk.to_numpy(zero_copy_only=False) for chunk in table[name].chunks]
        )
        training = values[train][~np.isnan(values[train])]
        mean, std = training.mean(), training.std()
        assert encoder.mean[position].item() == pytest.approx(mean, rel=1e-12)
        assert encoder.std[position].item() == pytest.approx(std, rel=1e-9)
        expected = np.where(np.isnan(values), 0.0, (values - mean) / std).astype(np.float32)
        for part, rows in zip(features, parts):  # each part's rows, in table order
            assert np.allclose(part[:, position].numpy(), expected[rows], atol=1e-6)
    assert encoder.missing == {"real": int(np.isnan(real).sum()) + 12}  # NaN, and the nulls of every 50th row
    assert encoder.categories == {"colour": ["blue", "green", "red"]}
    for part, rows in zip(features, parts):
        hot = part[:, 3:].argmax(dim=1).numpy()
        assert [encoder.categories["colour"][k] for k in hot] == list(colours[rows])
    again = encoder.encode(table)[np.concatenate(parts)]  # as a new file: shifted by the means, not the first batch's
    assert torch.allclose(again, torch.cat(features), rtol=0, atol=1e-6)


def test_a_split_column_decides_the_splits(houses):
    data = datamodule(path=str(houses), target="price", split="split")
    assert {name: len(rows) for name, rows in data.split_indices.items()} == {"train": 120, "val": 40, "test": 40}
    assert "split" not in data.encoder.columns


def test_the_split_is_stratified_by_class_and_seeded(houses):
    first, again = datamodule(path=str(houses), target="size", seed=3), datamodule(path=str(houses), target="size", seed=3)
    assert torch.equal(first.split_indices["test"], again.split_indices["test"])
    labels = first.datasets["val"].tensors[1]
    counts = torch.bincount(first.datasets["train"].tensors[1])
    assert abs(int((labels == 0).sum()) - round(0.1 * int((torch.cat([first.datasets[s].tensors[1] for s in ("train", "val", "test")]) == 0).sum()))) <= 1
    assert counts.min() > 0


@pytest.fixture
def cli_run(compose_config, tmp_path, caplog, capfd, monkeypatch):
    """The command-line job in-process: (exit status or None, the one error line or the final metrics)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def _run(*overrides: str):
        cfg = compose_config(*overrides, *FAST, output_dir=tmp_path / "run")
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="lregloss.app.train"), pytest.raises(SystemExit) as exit:
            run(cfg)
        errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert "Traceback" not in "".join(capfd.readouterr())
        return exit.value.code, errors[0]

    return _run


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["data.path={tmp}/nope.csv", "data.target=price"], "data.path '{tmp}/nope.csv' is not a file"),
        (["data.target=cost"], "data.target: {tmp}/houses.csv has no column 'cost'; its columns are 'area', 'rooms', 'city'"),
        (["data.target=price", "data.features=[area,colour]"], "data.features: {tmp}/houses.csv has no column 'colour'"),
        (["data.target=one"], "target one holds one value (7) in 200 rows; a multiclass target needs two or more"),
        (["data.target=size", "data.task=regression"], "row 1: size 'big' is not a number, which a regression target needs"),
        (["data.target=size", "data.task=ordinal"], "size holds string levels, whose order is not known; give it with data.levels"),
        (["data.target=size", "data.levels=[small,medium]"], "size 'big' is not one of the levels small, medium"),
        (["data.target=price", "data.features=[area,empty]"], "feature column empty has no value in the training split"),
        (["data.target=[garden,rooms]", "data.task=multilabel"], "is not 0 or 1, which an attribute needs"),
        (["data.target=price", "data.task=binary"], "data.task 'binary' is unknown; use one of: multiclass"),
        (["data.target=price", "loss=hinge"], "does not fit a regression task"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli_run, tmp_path, overrides, expected):
    extra = {name: value for name, value in (("one", 7), ("empty", "")) if name in " ".join(overrides)}
    write_csv(tmp_path / "houses.csv", [{**row, **extra} for row in house_rows()])
    overrides = [part.format(tmp=tmp_path) for part in overrides]
    if not any(part.startswith("data.path=") for part in overrides):
        overrides.insert(0, f"data.path={tmp_path}/houses.csv")
    code, line = cli_run("data=table", "loss=l2" if "loss=" not in " ".join(overrides) else "seed=0", *overrides)
    assert code == 2
    assert expected.format(tmp=tmp_path) in line, line


@pytest.mark.parametrize(
    "overrides, metric",
    [
        (["data.target=price", "loss=l2"], "val/rmse"),
        (["data.target=size", "loss=hinge"], "val/acc"),
        (["data.target=[garden,garage]", "loss=attr_logistic"], "val/hamming"),
        (["data.target=stars", "data.task=ordinal", "loss=ordinal"], "val/acc"),
    ],
)
def test_each_task_kind_trains_from_a_table_and_predicts_a_new_file(compose_config, tmp_path, overrides, metric):
    write_csv(tmp_path / "houses.csv", house_rows())
    features = "data.features=[area,rooms,city]"
    metrics = train(compose_config("data=table", f"data.path={tmp_path}/houses.csv", features, *overrides, *FAST,
                                   output_dir=tmp_path / "run"))  # fmt: skip
    assert metric in metrics and "model:\n  _target_: lregloss.models.mlp.MLP" in (tmp_path / "run" / "config.yaml").read_text()
    new = write_csv(tmp_path / "new.csv", house_rows(5, seed=9), ["area", "rooms", "city"])
    assert predict_main([str(tmp_path / "run"), str(new), "-o", str(tmp_path / "out.csv")]) == 0
    with open(tmp_path / "out.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 5


def test_text_with_many_classes_trains_hsoftmax_on_the_class_counts(compose_config, tmp_path):
    rows = ticket_rows()
    write_csv(tmp_path / "tickets.csv", rows)
    metrics = train(compose_config(
        "data=text", f"data.path={tmp_path}/tickets.csv", "data.text=[subject,body]", "data.target=queue",
        "data.min_count=1", "loss=hsoftmax", "loss.class_counts=data", *FAST, output_dir=tmp_path / "run",
    ))  # fmt: skip
    assert metrics["val/acc"] > 0.5  # the queue's name is in the body
    data = TextDataModule(path=str(tmp_path / "tickets.csv"), text=["subject", "body"], target="queue", min_count=1)
    data.setup("fit")
    assert data.task.names == QUEUES and data.texts[1] == f"{rows[1]['subject']}\n{rows[1]['body']}"
    assert data.texts[0].startswith("\n")  # an empty subject: the row is kept, it has a body


def test_text_attributes_from_a_list_of_0_1_columns(tmp_path):
    write_csv(tmp_path / "tickets.csv", ticket_rows())
    data = TextDataModule(path=str(tmp_path / "tickets.csv"), text="body", target=["urgent", "angry"], min_count=1)
    data.setup("fit")
    assert (data.task.kind, data.task.names) == (TaskKind.MULTILABEL, ("urgent", "angry"))
    assert data.datasets["train"].tensors[1].shape[1] == 2


def test_hundreds_of_small_classes_still_get_validation_and_test_rows(tmp_path):
    rows = [{"text": f"word{label} filler", "label": f"class{label:03d}"} for label in range(300) for _ in range(3)]
    write_csv(tmp_path / "many.csv", rows)
    data = TextDataModule(path=str(tmp_path / "many.csv"), text="text", target="label", min_count=1)
    data.setup("fit")
    assert data.task.size == 300 and min(data.task.class_counts) >= 1  # every class keeps a training row
    assert {name: len(part) for name, part in data.split_indices.items()} == {"train": 720, "val": 90, "test": 90}


def test_a_quoted_value_with_a_line_break_is_read_whole_and_plain_files_take_the_parallel_parser(tmp_path):
    from lregloss.data.tables import may_quote_newlines

    plain = write_csv(tmp_path / "plain.csv", house_rows(20))
    assert not may_quote_newlines(plain)
    rows = [{"text": f"line one {index}\nline two", "label": index % 2} for index in range(40)]
    quoted = write_csv(tmp_path / "quoted.csv", rows)
    assert may_quote_newlines(quoted)
    data = TextDataModule(path=str(quoted), text="text", target="label", min_count=1)
    data.setup("fit")
    assert len(data.texts) == 40 and all(text.endswith("\nline two") for text in data.texts)


@pytest.mark.parametrize("size", [1, 7, 1000, 12345])
def test_shuffled_split_gives_each_part_its_share_of_a_seeded_permutation_sorted(size):
    """The reference written out: part k takes the next round(f_k * N) of randperm(N), the last part the rest."""
    fractions = (0.1, 0.15)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(5))
    cuts = [round(fraction * size) for fraction in fractions]
    bounds = np.cumsum([0, *cuts])
    expected = [order[a:b].sort().values for a, b in zip(bounds[:-1], bounds[1:])] + [order[bounds[-1]:].sort().values]
    parts = shuffled_split(size, fractions, 5)
    assert all(part.dtype == torch.long and torch.equal(part, want) for part, want in zip(parts, expected))
