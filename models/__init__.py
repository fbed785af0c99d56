"""Flax NNX implementations of what the workbook's derivations talk about.

Plain Flax and JAX, usable without SymPy: ``models`` never imports ``derivations``.
"""
