"""The CLI in a new process with no Prefect API configured: what a user's first command meets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs the command and says how it exited and whether Prefect was imported on the way.
PROBE = (
    "import sys\nfrom flows.cli import app\ntry:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n"
    "    print('exit', e.code, 'prefect imported:', 'prefect' in sys.modules)\n"
)


def run_cli(args: list[str], directory: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """`triplegain ARGS` run in `directory`, with its own Prefect home, database (tg.db there) and data
    directory; `environment` overrides. Its stdout ends with "exit N prefect imported: True|False"."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        "PREFECT_HOME": str(directory / "prefect-home"),
        "TRIPLEGAIN_DATABASE_URL": f"sqlite:///{directory / 'tg.db'}",
        "XDG_DATA_HOME": str(directory / "data"),  # where a backtest's result goes by default
    }
    env |= environment
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
