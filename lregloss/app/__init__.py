"""lregloss's own Hydra application: ``lregloss-train`` and what it needs, apart from what users import.

``train`` builds and runs a job from a composed config (the command line's ``main``);
``resume`` continues a killed run; ``distributed`` launches DDP ranks on one Hydra job;
``hydra_callbacks`` checks whole jobs and sweeps; ``error_reporting`` turns failures into one
line; ``checkpointing`` writes and reads the run's checkpoint files safely. The user-facing
layer (``lregloss.losses``, ``regularizers``, ``callbacks``, ``metrics``, ``module``) never
imports this package.
"""
