"""Stands in as ``__main__`` of a pytest-xdist worker (see conftest.py); deliberately does nothing.

Worker processes that the generator's process pool spawns re-run the parent's main module, so it must be a real,
importable file without side effects.
"""
