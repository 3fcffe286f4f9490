"""The README's Python examples run as written (those that need no Prefect server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
EXAMPLES = [b for b in BLOCKS if "flows." not in b and "blocks." not in b]  # those need a Prefect server


def test_the_readme_has_runnable_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("code", EXAMPLES, ids=lambda c: c.splitlines()[0])
def test_readme_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


YAML_EXAMPLES = re.findall(r"```yaml\n(.*?)```", README, re.S)


SPACES = [t for t in YAML_EXAMPLES if t.startswith("# space.yaml")]  # `triplegain optimize` search spaces


@pytest.mark.parametrize(
    "text", [t for t in YAML_EXAMPLES if t not in SPACES], ids=lambda t: t.splitlines()[0]
)
def test_readme_yaml_settings_load(text: str, tmp_path: Path) -> None:
    from triplegain.settings import load_settings

    path = tmp_path / "settings.yaml"
    path.write_text(text)

    load_settings(path)


@pytest.mark.parametrize("text", SPACES, ids=lambda t: t.splitlines()[0])
def test_readme_search_spaces_pass_the_checks(text: str, tmp_path: Path) -> None:
    from triplegain.optimize import check_space, load_space
    from triplegain.settings import load_settings

    path = tmp_path / "space.yaml"
    path.write_text(text)

    check_space(load_space(path), lambda overrides: load_settings(**overrides))
