"""``python -m lregloss [group=choice ...] [key=value ...]``: the same command as ``lregloss-train``."""

from lregloss.app.train import main

if __name__ == "__main__":
    main()
