"""pytest's root configuration: ``pytest`` runs ``tests/`` and the docstring examples of the
``nslightning`` package (``--doctest-modules``, see ``[tool.pytest.ini_options]``).

Every module of the package is imported for its doctests. One needs an optional dependency:
``nslightning/kernels/sgns_triton.py`` imports Triton at its top (PyTorch's CUDA wheels bring
Triton, the dev extra installs it on Linux, a CPU-only install may lack it). Without Triton that
module is not collected; the engine that uses it imports it only on a CUDA device.
"""

from __future__ import annotations

from importlib.util import find_spec

collect_ignore = [] if find_spec("triton") else ["nslightning/kernels/sgns_triton.py"]
