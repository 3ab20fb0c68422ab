"""Reproduce the lecture's claims on real data: python scripts/study.py [sparsity ratings attributes hsoftmax]

Each study trains through lregloss.app.train (runs in logs/study/<time>/), reads back what the runs
wrote, and writes results/<study>.md with its tables and PNG plots. --tiny: a smoke run.
"""

import sys

from lregloss.study.cli import main

if __name__ == "__main__":
    sys.exit(main())
