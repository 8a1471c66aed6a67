"""Guard for the TensorFlow/torch trap: TF first, then torchvision/Lightning, segfaults here.

Digit Lab's rule is "torch side first": ``engines.core.import_engine`` imports torch,
torchvision and Lightning before the Keras engine. These checks run in fresh processes,
because a segfault would take the test runner down with it.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def test_keras_engine_then_torch_engines_in_one_process() -> None:
    code = """
from engines.core import import_engine
for framework in ("keras", "torch", "lightning"):
    engine = import_engine(framework)
    print(framework, engine.trainable_params("cnn"))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["keras", "421834", "torch", "421834", "lightning", "421834"]


def test_importing_the_keras_engine_loads_torch_side_first() -> None:
    code = """
import sys
from engines.core import import_engine
import_engine("keras")
watched = ("torch", "torchvision", "lightning", "tensorflow")
order = [name for name in sys.modules if name in watched]
print(" ".join(order))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["torch", "torchvision", "lightning", "tensorflow"]
