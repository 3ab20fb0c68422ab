"""Train from a source checkout: python scripts/train.py loss=hinge reg=l1, the same as lregloss-train.

See ``lregloss.app.train.main`` (``lregloss-train --help``): sweeps with -m, resume=<run dir>,
exit status 0 done, 1 a sweep with failed jobs, 2 bad input, 3 diverged.
"""

from lregloss.app.train import main

if __name__ == "__main__":
    main()
