"""The benchmark harness: the timer and its ratios on hand-made samples, and every benchmark at toy size.

No timing is asserted: the machines are shared, and the benchmarks report, they do not test.
"""

import math

import pytest
import torch

from benchmarks import step_costs
from benchmarks.__main__ import BENCHMARKS, main
from lregloss.benchmarking.timing import Measured, Table, Timing, time_variants
from lregloss.models import MLP
from lregloss.regularizers import NoRegularizer


def test_variants_run_interleaved_in_rotated_order_after_warmup():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timings = time_variants(variants, repeats=4, warmup=2)
    assert calls[:6] == list("abcabc")  # warm-up rounds, in the given order
    assert calls[6:] == list("abc" "bca" "cab" "abc")  # round r starts r places further on
    assert {name: len(t.samples) for name, t in timings.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(sample >= 0 for t in timings.values() for sample in t.samples)


def test_a_variant_timing_itself_gives_its_own_seconds():
    seconds = iter([0.5, 0.25, 1.0, 2.0])
    timings = time_variants({"fit": lambda: Measured(next(seconds))}, repeats=3, warmup=1)
    assert timings["fit"].samples == (0.25, 1.0, 2.0)


def test_device_work_is_waited_for_around_every_sample():
    events = []
    time_variants(
        {"a": lambda: events.append("a"), "b": lambda: events.append("b")},
        repeats=2, warmup=1, synchronize=lambda: events.append("sync"),
    )  # fmt: skip
    assert events[:2] == ["a", "b"]  # warm-up: untimed, so nothing to wait for
    assert events[2:] == ["sync", "a", "sync", "sync", "b", "sync", "sync", "b", "sync", "sync", "a", "sync"]


def test_short_calls_are_timed_in_groups():
    calls = []
    time_variants({"tiny": lambda: calls.append(1)}, repeats=2, warmup=0, min_sample_s=1e-3)
    assert len(calls) > 3  # one calibration call, then two samples of many calls each


def test_ratios_of_a_row():
    baseline = Timing("base", (2.0, 4.0, 2.0, 2.0))
    variant = Timing("variant", (3.0, 4.4, 2.2, 2.1))
    table = Table("t", "setup")
    row = table.add("variant", variant, baseline, target=1.10)
    # Same-round ratios 1.5, 1.1, 1.1, 1.05: the load-heavy second round does not hide the rest.
    assert row.paired_ratio == pytest.approx(1.1)
    assert row.ratio == pytest.approx(((3.0 + 2.2) / 2) / 2.0)  # medians 2.6 and 2.0
    assert row.ratio_of_mins == pytest.approx(2.1 / 2.0)
    assert row.met is True
    assert table.add("slow", Timing("slow", (3.0, 6.0, 3.0, 3.0)), baseline, target=1.10).met is False
    assert table.add("reported", variant, baseline).met is None


def test_table_markdown_has_one_line_per_row_and_marks_misses():
    baseline = Timing("base", (0.010, 0.012))
    table = Table("Title", "How it was run.")
    table.add("fast", Timing("fast", (0.005, 0.006)), baseline, target=0.8)
    table.add("slow", Timing("slow", (0.020, 0.024)), baseline, target=0.8)
    table.notes.append("a note")
    lines = table.markdown().splitlines()
    assert lines[0] == "### Title" and "How it was run." in lines
    fast = next(line for line in lines if line.startswith("| fast "))
    slow = next(line for line in lines if line.startswith("| slow "))
    assert "| base |" in fast and "0.500x" in fast and fast.endswith("| yes |")
    assert "2.000x" in slow and slow.endswith("| **no** |")
    assert lines[-1] == "- a note"


def test_time_variants_refuses_bad_arguments():
    with pytest.raises(ValueError, match="at least one variant"):
        time_variants({}, repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        time_variants({"a": lambda: None}, repeats=0)


MLP_ROWS = [
    "SGD weight_decay", "l2, penalty through autograd", "l2", "l2, log every 10",
    "l1, penalty through autograd", "l1", "l1, log every 10", "elastic, penalty through autograd", "elastic",
    "elastic, log every 10", "l1 proximal", "l1 proximal, log every 10", "max-norm constraint",
]  # fmt: skip
CNN_ROWS = [
    "SGD weight_decay", "l2, penalty through autograd", "l2", "l2, log every 10", "l1", "elastic",
    "elastic, log every 10", "l1 proximal", "max-norm constraint",
]  # fmt: skip
EXPECTED_ROWS = {
    "hinge": [["hinge", "squared_hinge", "F.cross_entropy"]] * 2,
    "regularizers": [MLP_ROWS, CNN_ROWS],
    "hsoftmax": [
        [f"C={c}: {name}" for c in (10, 40) for name in (
            "hsoftmax, uniform", "adaptive softmax, uniform", "hsoftmax, zipf", "adaptive softmax, zipf",
            "hsoftmax Huffman, zipf")],
        [f"C={c}: {name}" for c in (10, 40) for name in ("hsoftmax log_prob", "adaptive log_prob")],
    ],  # fmt: skip
    "module_epoch": [
        [
            "RegularizedLossModule",
            "bare LightningModule + Regularization(L2)",
            "bare LightningModule + Regularization(L2), against L2 in its loss",
            "plain PyTorch loop",
            "RegularizedLossModule, against the loop",
        ]
    ],
    "cifar_epoch": [["RegularizedLossModule", "RegularizedLossModule, as the recipe"], ["trainer.validate"]],
    "tables": [
        ['TableDataModule.setup("fit")', "lregloss.data.tables.read_table"],
        ['TextDataModule.setup("fit")', "pyarrow.csv.read_csv", "tokenise", "lregloss.data.tables.read_table"],
    ],
    "step_costs": [[
        "plain PyTorch loop", "RegularizedLossModule, reg=none", *(f"RegularizedLossModule, {label}" for label in
        step_costs.REGULARIZERS), "RegularizedLossModule + MaxNormConstraint(3)", step_costs.CIFAR_ROW,
    ]],  # fmt: skip
}


def test_every_benchmark_is_smoke_tested():
    assert set(EXPECTED_ROWS) == set(BENCHMARKS)


@pytest.mark.parametrize("name", sorted(set(EXPECTED_ROWS) - {"step_costs"}))
def test_benchmark_runs_at_tiny_size_and_gives_its_rows(name):
    tables = BENCHMARKS[name](True)
    assert [table.labels for table in tables] == EXPECTED_ROWS[name]
    for table in tables:
        assert all(row.target is None for row in table.rows)  # targets are for the real sizes only
        for row in table.rows:
            assert all(math.isfinite(s) and s > 0 for s in row.timing.samples + row.baseline.samples)
        markdown = table.markdown()
        assert all(f"| {label} |" in markdown for label in table.labels)


def test_runner_writes_results_with_machine_and_versions(tmp_path):
    output = tmp_path / "RESULTS.md"
    threads = torch.get_num_threads()
    main(["--tiny", "--only", "hinge", "--output", str(output), "--threads", str(threads)])
    text = output.read_text()
    assert text.startswith("# Benchmark results")
    assert f"torch {torch.__version__}" in text and f"torch threads: {threads}" in text
    assert "## Targets" in text and "## hinge" in text and "Every number is CPU" in text
    assert "| hinge | nn.MultiMarginLoss(p=1) |" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_runner_refuses_cuda_without_a_gpu(capsys):
    with pytest.raises(SystemExit):
        main(["--tiny", "--only", "hinge", "--device", "cuda"])
    assert "torch sees no GPU" in capsys.readouterr().err


def test_runner_refuses_unknown_benchmarks():
    with pytest.raises(SystemExit):
        main(["--only", "nonsense"])


def test_step_costs_meet_their_targets_on_the_accelerator_code_paths():
    # Counts, not times: they hold on any machine. No variant reads a device value on a step that does not log.
    [table] = BENCHMARKS["step_costs"](True)
    assert table.labels == EXPECTED_ROWS["step_costs"][0]
    for row in table.rows:
        assert row.extra_syncs == 0 and row.met, table.markdown()
    module = table.row("RegularizedLossModule, reg=none")
    assert 0 < module.extra_ops <= 0.10 * module.baseline_ops  # the divergence flag: two small ops, no read
    assert "| RegularizedLossModule, reg=none | " in table.markdown()


def test_the_step_counter_sees_a_host_read_and_the_cpu_divergence_check_makes_one():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with torch.profiler.record_function(step_costs.STEP):
            flag = torch.isfinite(torch.ones(()))
            bool(flag)
            torch.ones(3).nonzero()
    [cost] = step_costs.step_costs(prof, [False])
    assert cost.syncs == 2 and set(cost.sync_names) == {"aten::_local_scalar_dense", "aten::nonzero"}
    # On the CPU's own code path the module reads its divergence flag every step: one sync more than the bare module.
    hidden = step_costs.HIDDEN
    bare = step_costs.median_cost(step_costs.profiled_fit(step_costs.BareModule(MLP(64, 10, hidden_sizes=hidden)), 8))
    on_cpu = step_costs.median_cost(
        step_costs.profiled_fit(step_costs.module(hidden, NoRegularizer()), 8, accelerator_paths=False)
    )
    assert on_cpu[1] == bare[1] + 1 and on_cpu[2]["aten::_local_scalar_dense"] == bare[2]["aten::_local_scalar_dense"] + 1
