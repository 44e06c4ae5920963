"""scripts/setup fails loudly, naming the missing tool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_with_path(tmp_path: Path, tools: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in tools.items():
        (bin_dir / name).symlink_to(target)
    for base in ("bash", "cat", "sha256sum", "cut", "dirname"):  # what the script itself uses
        found = next(
            (
                Path(d) / base
                for d in [*os.defpath.split(":"), "/usr/bin", "/bin"]
                if (Path(d) / base).exists()
            ),
            None,
        )
        if found is not None and not (bin_dir / base).exists():
            (bin_dir / base).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "scripts" / "setup")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="builds a minimal PATH from /usr/bin")
def test_setup_names_missing_node(tmp_path: Path) -> None:
    out = _run_with_path(tmp_path, {"python3": sys.executable})
    assert out.returncode != 0
    assert "node not found" in out.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="builds a minimal PATH from /usr/bin")
def test_setup_names_missing_python(tmp_path: Path) -> None:
    out = _run_with_path(tmp_path, {})
    assert out.returncode != 0
    assert "python3 (3.11 or newer) not found" in out.stderr
