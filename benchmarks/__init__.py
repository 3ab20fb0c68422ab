"""Speed benchmarks: lregloss's losses, regularizers and module against PyTorch's own paths.

One module per benchmark, each with ``run(tiny=False) -> list[Table]`` and a command line
(``python -m benchmarks.hinge [--tiny]``); ``python -m benchmarks`` runs them all and writes
``benchmarks/RESULTS.md``. The shared timer and table are in ``lregloss.benchmarking.timing``.
"""
