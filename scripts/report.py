"""Tabulate and plot a sweep from what its jobs wrote: python scripts/report.py logs/multiruns/<time>

Prints a table (one row per job: the settings that varied, final validation and test metrics,
weight sparsity, epochs, wall time) and writes report.md, heatmap.png and curves.png into
<folder>/report (--output). Also takes logs/runs, logs/multiruns, or single run folders.
Exit status: 0 written; 2 a folder, --metric or --sort that does not exist, named in one line.
"""

import sys

from lregloss.reporting.cli import main

if __name__ == "__main__":
    sys.exit(main())
