"""The config groups another Hydra app can compose: ``loss``, ``reg`` and ``callbacks/max_norm``.

Installed as ``lregloss.conf.pluggable``; an app adds them with

    hydra:
      searchpath:
        - pkg://lregloss.conf.pluggable

and gets none of lregloss's own ``data``, ``model``, ``trainer`` or ``experiment`` groups.
lregloss's ``train.yaml`` finds them the same way.
"""
