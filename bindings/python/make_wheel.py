"""Builds adamcore's binary wheel from an already built library and extension, with the standard library only
(no pip, setuptools, wheel or auditwheel, no network): `make wheel` runs it.

The wheel holds the Python package (its .py files, type stubs and py.typed; no C sources), the extension, and
libadamcore.so.<major> stripped of its symbol tables beside it (the extension's RUNPATH is $ORIGIN). Its platform
tag is the manylinux tag its two shared objects allow, checked as auditwheel checks it: every library they need is
one a manylinux system provides, and the newest glibc and libstdc++ symbol versions they use decide the tag. The
Swift runtime is linked statically into the library, so nothing else is needed.

Usage: make_wheel.py --library build/lib/libadamcore.so.X.Y.Z --extension EXT.so --out DIR
"""
import argparse
import base64
import hashlib
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent / "adamcore"

# Libraries every manylinux system provides (auditwheel's policy; the dynamic loader itself included).
MANYLINUX_LIBRARIES = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2",
                       "librt.so.1", "ld-linux-x86-64.so.2"}
# The newest libstdc++ symbol version each manylinux_2_N may use on x86_64, as auditwheel's manylinux-policy.json
# lists them (checked there for 2_35 to 2_37 and 2_39; 2_34 is AlmaLinux 9's gcc 11). Older tags are out of reach
# while the library needs glibc 2.35; a tag missing here stops the build rather than guess.
GLIBCXX_CEILING = {34: (3, 4, 29), 35: (3, 4, 30), 36: (3, 4, 30), 37: (3, 4, 30), 39: (3, 4, 33)}


def versions(path, prefix):
    """The symbol versions `prefix`_x.y.z that the dynamic symbol table of `path` uses, as tuples."""
    table = subprocess.run(["objdump", "-T", str(path)], check=True, capture_output=True, text=True).stdout
    return {tuple(int(x) for x in v.split(".")) for v in re.findall(rf"\b{prefix}_([0-9.]+[0-9])\b", table)}


def needed(path):
    dynamic = subprocess.run(["objdump", "-p", str(path)], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"NEEDED\s+(\S+)", dynamic))


def platform_tag(objects, own):
    """manylinux_2_N_<arch> for these shared objects, or an exit with the reason."""
    arch = sysconfig.get_platform().split("-", 1)[1].replace("-", "_")
    foreign = set().union(*(needed(o) for o in objects)) - MANYLINUX_LIBRARIES - own - {"libadamcore.so.0"}
    if foreign:
        sys.exit(f"make_wheel: needs libraries no manylinux system provides: {sorted(foreign)}")
    glibc = max(set().union(*(versions(o, "GLIBC") for o in objects)))
    if glibc[0] != 2 or glibc[1] not in GLIBCXX_CEILING:
        sys.exit(f"make_wheel: glibc {glibc} has no entry in GLIBCXX_CEILING")
    cxx = set().union(*(versions(o, "GLIBCXX") for o in objects))
    if cxx and max(cxx) > GLIBCXX_CEILING[glibc[1]]:
        sys.exit(f"make_wheel: libstdc++ {max(cxx)} is newer than manylinux_2_{glibc[1]} allows")
    return f"manylinux_2_{glibc[1]}_{arch}", glibc, max(cxx) if cxx else None


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--library", required=True, type=Path)
    parser.add_argument("--extension", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    header = (ROOT / "include" / "adamcore.h").read_text()
    version = re.search(r'#define ADAMCORE_VERSION_STRING "(.*)"', header).group(1)
    soname = f"libadamcore.so.{version.split('.')[0]}"
    ext_name = "_core" + sysconfig.get_config_var("EXT_SUFFIX")

    with tempfile.TemporaryDirectory() as work:
        stripped = Path(work) / soname
        subprocess.run(["strip", "--strip-unneeded", "-o", str(stripped), str(args.library)], check=True)
        tag_platform, glibc, cxx = platform_tag([stripped, args.extension], {soname})
        python = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        tag = f"{python}-{python}-{tag_platform}"
        files = {f"adamcore/{p.name}": p.read_bytes() for p in sorted(PACKAGE.iterdir())
                 if p.is_file() and p.suffix in (".py", ".pyi") or p.name == "py.typed"}
        files[f"adamcore/{ext_name}"] = args.extension.read_bytes()
        files[f"adamcore/{soname}"] = stripped.read_bytes()

    summary = ("In-place SIMD optimizer steps (Adam, AdamW, AMSGrad, AdaFix, SGD, RMSprop, AdaGrad) for numpy "
               "arrays and torch tensors")
    dist = f"adamcore-{version}.dist-info"
    files[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: adamcore\nVersion: {version}\nSummary: {summary}\n"
                                 "Requires-Python: >=3.9\nRequires-Dist: numpy\n").encode()
    files[f"{dist}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: adamcore make_wheel.py\nRoot-Is-Purelib: false\n"
                              f"Tag: {tag}\n").encode()
    record = [record_line(name, data) for name, data in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()

    args.out.mkdir(parents=True, exist_ok=True)
    wheel = args.out / f"adamcore-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".so") or ".so." in name else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    size = wheel.stat().st_size
    print(f"{wheel} ({size / 1e6:.1f} MB; glibc >= {'.'.join(map(str, glibc))}, libstdc++ "
          f"{'.'.join(map(str, cxx)) if cxx else 'unused'}; library {len(files[f'adamcore/{soname}']) / 1e6:.1f} MB "
          "stripped)")


if __name__ == "__main__":
    main()
