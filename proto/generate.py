"""Regenerates the Python stubs from proto/v1/*.proto (needs grpcio-tools).

The .proto files are compiled from a scratch tree laid out as `durable/proto/v1/`, so the
generated modules import each other as `durable.proto.v1...` and the descriptors carry the
same path wherever the package is installed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


PACKAGES = ("v1", "keda")


def generate(out_dir: Path) -> list[Path]:
    """Compile the .proto files of every package folder into out_dir; return the files written."""
    written = []
    for package in PACKAGES:
        written += _generate(out_dir, package)
    return written


def _generate(out_dir: Path, package: str) -> list[Path]:
    from grpc_tools import protoc  # a development dependency only

    with tempfile.TemporaryDirectory() as scratch:
        src = Path(scratch) / "src"
        pkg = src / "durable" / "proto" / package
        pkg.mkdir(parents=True)
        protos = sorted((HERE / package).glob("*.proto"))
        for proto in protos:
            shutil.copy(proto, pkg / proto.name)
        gen = Path(scratch) / "gen"
        gen.mkdir()
        include = str(Path(protoc.__file__).parent / "_proto")
        args = [
            "protoc",
            f"-I{src}",
            f"-I{include}",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            *[str(pkg / p.name) for p in protos],
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = []
        target = out_dir / package
        target.mkdir(parents=True, exist_ok=True)
        for produced in sorted((gen / "durable" / "proto" / package).iterdir()):
            if produced.name.endswith(GENERATED_SUFFIXES):
                shutil.copy(produced, target / produced.name)
                written.append(target / produced.name)
        return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
