"""nslightning: negative sampling for PyTorch Lightning.

Subpackages: ``samplers`` (negative samplers), ``losses``, ``models`` (plain torch modules),
``tasks`` (LightningModules), ``data`` (corpora, vocabulary, DataModules, Keras-compatible
preprocessing), ``callbacks`` (evaluation, export, throughput), ``optim``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
