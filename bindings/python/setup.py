"""Builds the CPython extension against libadamcore, which the repository's Makefile builds first (it needs the
Swift toolchain). The library is copied into the package and found through the extension's $ORIGIN RUNPATH."""
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'#define ADAMCORE_VERSION_STRING "(.*)"', (ROOT / "include" / "adamcore.h").read_text()).group(1)


class BuildWithLibrary(build_ext):
    def run(self):
        # Only when it is missing: a built library needs no Swift toolchain on PATH (sudo's PATH, a CI image).
        # `make lib` installs nothing: it needs the Swift toolchain and no Python package.
        if not (ROOT / "build" / "lib" / f"libadamcore.so.{VERSION}").exists():
            subprocess.run(["make", "-C", str(ROOT), "lib"], check=True)
        super().run()
        package = Path(self.build_lib) / "adamcore"
        package.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "build" / "lib" / f"libadamcore.so.{VERSION}", package / f"libadamcore.so.{VERSION.split('.')[0]}")


setup(
    version=VERSION,
    ext_modules=[Extension(
        "adamcore._core",
        sources=["adamcore/_core.c", "adamcore/_buffers.c", "adamcore/_config.c", "adamcore/_stateless.c",
                 "adamcore/_optimizer.c", "adamcore/_torch.c"],
        depends=["adamcore/_core.h"],
        include_dirs=[str(ROOT / "include")],
        library_dirs=[str(ROOT / "build" / "lib")],
        libraries=["adamcore", "m"],
        extra_compile_args=["-std=c11"],
        extra_link_args=["-Wl,-rpath,$ORIGIN"],
    )],
    cmdclass={"build_ext": BuildWithLibrary},
)
