"""`make package-size` (scripts/package-size.sh): the limit logic, on a tiny wheel instead of a full install.

The script installs a requirements file the way the Functions remote build does (``pip install --target``),
prints the largest packages and fails above the limit. Here the requirements name one local wheel of a known
size and pip may not use an index (``PIP_NO_INDEX``), so each run takes a second and needs no network.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "package-size.sh"
PAYLOAD_BYTES = 3_000_000


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _tiny_wheel(folder: Path) -> Path:
    """``tinypkg`` 0.1: a pure-Python wheel carrying ``PAYLOAD_BYTES`` of incompressible data."""
    files = {
        "tinypkg/__init__.py": b"",
        "tinypkg/payload.bin": os.urandom(PAYLOAD_BYTES),
        "tinypkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
        "tinypkg-0.1.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [_record_line(name, data) for name, data in files.items()] + ["tinypkg-0.1.dist-info/RECORD,,"]
    wheel = folder / "tinypkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("tinypkg-0.1.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{_tiny_wheel(tmp_path)}\n")
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "PYTHON": sys.executable,
            "PIP_NO_INDEX": "1",
            "PIP_NO_CACHE_DIR": "1",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_above_the_limit_fails_with_the_size_and_the_largest_packages(tmp_path: Path) -> None:
    out = _run(
        tmp_path, PACKAGE_SIZE_REQUIREMENTS=str(tmp_path / "requirements.txt"), PACKAGE_SIZE_LIMIT_MB="2"
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"^\s+3\.0 MB  tinypkg$", out.stdout, re.MULTILINE), out.stdout
    assert re.search(r"FAIL: the deployed packages take 3\.\d MB, more than the limit of 2 MB", out.stderr)
    assert "local extra in pyproject.toml" in out.stderr
    assert not list(tmp_path.glob("streamduck-package-size.*"))  # the temporary install is removed


def test_within_the_limit_passes(tmp_path: Path) -> None:
    out = _run(tmp_path, str(tmp_path / "requirements.txt"), "4")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"OK: the deployed packages take 3\.\d MB \(limit 4 MB\)", out.stdout)


def test_a_bad_limit_or_a_missing_file_is_an_error_before_installing(tmp_path: Path) -> None:
    out = _run(tmp_path, str(tmp_path / "requirements.txt"), "lots")
    assert out.returncode == 2 and "the limit must be whole MB" in out.stderr
    out = _run(tmp_path, str(tmp_path / "missing.txt"))
    assert out.returncode == 2 and "no requirements file" in out.stderr


def test_make_and_ci_run_the_check_before_the_tests() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^package-size:.*## ", makefile, re.MULTILINE)
    assert "scripts/package-size.sh" in makefile
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("\nmake package-size\n") < ci.index("\nmake test")
    funcignore = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert "__pycache__/" in funcignore
