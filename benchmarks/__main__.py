"""Run every benchmark and write benchmarks/RESULTS.md (``make bench``).

    python -m benchmarks                      # the full set, about 5-10 minutes on 2 cores
    python -m benchmarks --tiny               # toy sizes, printed only (a smoke test)
    python -m benchmarks --only hinge,hsoftmax --output /tmp/partial.md
    python -m benchmarks --device cuda        # on a GPU; writes benchmarks/RESULTS_GPU.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks import cifar_epoch, hinge, hsoftmax, module_epoch, regularizers, step_costs, tables
from benchmarks.report import BenchmarkResult, results_markdown
from lregloss.benchmarking.timing import Table

BENCHMARKS: dict[str, Callable[[bool, torch.device], list[Table]]] = {
    "hinge": hinge.run,
    "regularizers": regularizers.run,
    "hsoftmax": hsoftmax.run,
    "module_epoch": module_epoch.run,
    "cifar_epoch": cifar_epoch.run,
    "tables": tables.run,
    "step_costs": step_costs.run,
}
RESULTS = {"cpu": Path(__file__).resolve().parent / "RESULTS.md", "cuda": Path(__file__).resolve().parent / "RESULTS_GPU.md"}
THREADS = 2  # the machines these targets were set on have 2 cores

NOTES = {
    "cpu": ("Every number is CPU; `python -m benchmarks --device cuda` times the same variants on a GPU.",),
    "cuda": (
        "Every variant runs on the GPU; the CPU only launches kernels. The targets were set for the "
        "2-core CPU and are shown for comparison; small steps on a GPU are launch-bound, so a "
        "regularizer's few extra kernels weigh more there than its arithmetic.",
        "The CIFAR-10 rows use AirbenchNet 64/256/256 in bf16, as experiment=cifar10 trains, on random images in the "
        "CIFAR-10 format unless the data set is found.",
    ),
}


def run_benchmarks(
    names: Sequence[str],
    tiny: bool,
    echo: Callable[[str], None] = print,
    device: torch.device = torch.device("cpu"),
) -> list[BenchmarkResult]:
    """Run the named benchmarks in order on ``device``, echoing each table as it is done."""
    results = []
    for name in names:
        load_before = os.getloadavg()
        start = time.perf_counter()
        tables = BENCHMARKS[name](tiny, device)
        seconds = time.perf_counter() - start
        results.append(BenchmarkResult(name, tables, seconds, load_before, os.getloadavg()))
        for table in tables:
            echo(table.markdown() + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes; prints, writes nothing unless --output")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", type=Path, default=None, help="where to write the results (default "
                        "benchmarks/RESULTS.md, or RESULTS_GPU.md with --device cuda)")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch intra-op threads (default 2)")
    parser.add_argument("--device", choices=sorted(RESULTS), default="cpu", help="where the variants run (default cpu)")
    args = parser.parse_args(argv)
    names = [name for name in args.only.split(",") if name] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here (torch.cuda.is_available() is False); drop the option")
    torch.set_num_threads(args.threads)
    results = run_benchmarks(names, args.tiny, device=torch.device(args.device))
    output = args.output if args.output is not None or args.tiny else RESULTS[args.device]
    if output is not None:
        command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
        output.write_text(results_markdown(results, command.strip(), NOTES[args.device]))
        print(f"wrote {output}")


if __name__ == "__main__":
    main()
