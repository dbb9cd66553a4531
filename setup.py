"""
A shim for tools that still run C{setup.py}.

pyproject.toml is the one place of truth for this project's metadata,
dependencies and package layout; this file adds nothing to it.
"""

from setuptools import setup

setup()
