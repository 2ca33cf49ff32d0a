"""Builds the optional C accelerators; everything else about the package is in pyproject.toml.

Two extensions, one idea each: the line reader (auditsync/_c_reader.c) and the JSON writer
(auditsync/_c_json.c). They are optional: where they cannot be compiled, the install goes
on and auditsync runs on its pure-Python code, which gives the same results
(docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"auditsync.{name}", [f"auditsync/{name}.c"], optional=True, extra_compile_args=["-O2"]
        )
        for name in ("_c_reader", "_c_json")
    ]
)
