"""Build the optional compiled matcher loop (bot/decide/_speedups.pyx).

Everything else is in pyproject.toml. Without Cython or a C compiler the build goes on without
the extension and bugbar runs its pure-Python matcher (same results, slower).
"""

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile warns and leaves the pure-Python path instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure is optional here
            print(f"bugbar: compiled matcher not built ({exc}); using the pure-Python one")

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"bugbar: compiled matcher not built ({exc}); using the pure-Python one")


def _extensions() -> list:  # type: ignore[type-arg]
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    return cythonize(["bot/decide/_speedups.pyx"], compiler_directives={"language_level": 3},
                     quiet=True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
