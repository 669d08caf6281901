"""Every example under examples/ runs to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
EXPECTED = {
    "agent_loop.py": "agent answered: The forecast says: sunny, 21 degrees. (approved=yes)",
    "quickstart.py": "YOU ASKED: 'TELL ME A JOKE'. HERE IS A STREAMED ANSWER.",
    "live_tokens.py": "console subscriber: 18 tokens, in order",
    "durable_tokens.py": "late reader replayed 12 tokens (offsets 0..11)",
    "approval.py": "result:  published: Announcing actorflow 0.1",
}


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert EXPECTED.get(example.name, "") in proc.stdout


def test_every_example_has_an_expectation() -> None:
    assert {p.name for p in EXAMPLES} <= set(EXPECTED) | {"__init__.py"}
