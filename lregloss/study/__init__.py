"""The lecture study: each claim reproduced on real data, one module per study (``python scripts/study.py``)."""
