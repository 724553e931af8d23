"""Extension modules for setuptools; everything else is in pyproject.toml.

Every ``src/tickvault/**/_*.pyx`` is compiled to the module of the same dotted name (so a new
``.pyx`` needs no edit here). Each one is an optional accelerator with a pure-Python fallback,
so a machine that cannot compile still gets a working install (with a warning), and
``TICKVAULT_PURE_PYTHON=1`` skips compiling altogether.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import Extension, setup


def extensions() -> list[Extension]:
    if os.environ.get("TICKVAULT_PURE_PYTHON") == "1":
        return []
    from Cython.Build import cythonize

    root = Path(__file__).resolve().parent
    modules = []
    for pyx in sorted((root / "src").glob("tickvault/**/_*.pyx")):
        source = pyx.relative_to(root)  # setuptools wants paths relative to the project
        name = ".".join(pyx.relative_to(root / "src").with_suffix("").parts)
        modules.append(Extension(name, [source.as_posix()]))
    # A Cython error is a bug in the .pyx and stops the build; a C compiler failure (none
    # installed) only skips the module: ``optional`` (which cythonize does not carry over).
    compiled = cythonize(modules, compiler_directives={"language_level": 3}, quiet=True)
    for module in compiled:
        module.optional = True
    return compiled


setup(ext_modules=extensions())
