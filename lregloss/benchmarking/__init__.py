"""Timing tools shared by the repository's benchmarks (``python -m benchmarks``) and the study (``lregloss.study``).

``timing``: paired timings of variants and their Markdown tables; ``device``: waiting for a
device's queued kernels; ``machine``: the CPU's name; ``output_layers``: the output layers the
hierarchical softmax is compared with.
"""
