"""Build hook: bundle the repository's libxsocket.so next to the package when it is built,
so an installed package works without the repository (metadata is in pyproject.toml)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

LIB = Path(__file__).resolve().parent.parent / "target" / "release" / "libxsocket.so"


class BuildPy(build_py):
    """build_py that also copies ``target/release/libxsocket.so`` to ``xsocket/libxsocket.so``."""

    def run(self):
        super().run()
        if LIB.is_file():
            self.copy_file(str(LIB), str(Path(self.build_lib) / "xsocket" / LIB.name))


class BinaryDistribution(Distribution):
    """A wheel that carries the native library is platform-specific, not pure Python."""

    def has_ext_modules(self):
        return LIB.is_file()


setup(cmdclass={"build_py": BuildPy}, distclass=BinaryDistribution)
