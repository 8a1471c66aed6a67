"""The README's option table states the defaults the code actually uses."""

from __future__ import annotations

import re

import pytest

from engines.data import PROJECT_ROOT
from engines.spec import ARCH_DEFAULTS, RunSpec

README = (PROJECT_ROOT / "README.md").read_text()


def readme_default(option: str) -> str:
    """The "default" cell of ``option``'s row in the README's command-line table."""
    match = re.search(rf"^\| `{re.escape(option)}` \| ([^|]+) \|", README, re.MULTILINE)
    assert match, f"{option} is not in the README's option table"
    return match.group(1).strip()


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("--epochs", "epochs"),
        ("--augment-shift", "augment_shift"),
        ("--augment-rotate", "augment_rotate"),
        ("--augment-zoom", "augment_zoom"),
        ("--label-smoothing", "label_smoothing"),
    ],
)
def test_readme_states_each_architectures_default(option: str, field: str) -> None:
    expected = f"DNN {ARCH_DEFAULTS['dnn'][field]}, CNN {ARCH_DEFAULTS['cnn'][field]}"
    assert readme_default(option) == expected


def test_readme_states_the_shared_defaults() -> None:
    spec = RunSpec("torch", "dnn")
    assert readme_default("--batch-size") == str(ARCH_DEFAULTS["cnn"]["batch_size"])
    assert readme_default("--batch-size") == str(spec.batch_size)
    assert readme_default("--es-patience") == str(ARCH_DEFAULTS["cnn"]["es_patience"])
    assert readme_default("--es-patience") == str(spec.es_patience)
    assert readme_default("--dropout") == str(spec.dropout)
    assert readme_default("--seed") == str(spec.seed)
    assert readme_default("--scheduler") == f"`{spec.scheduler}`"
