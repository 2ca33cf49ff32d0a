"""Builds the optional C accelerator; everything else about the package is in pyproject.toml.

The extension is optional: where it cannot be compiled, the install goes on and auditsync
runs on its pure-Python reader, which gives the same results (docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "auditsync._speedups",
            ["auditsync/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
