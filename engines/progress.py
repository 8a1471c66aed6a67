"""Per-epoch progress for the command line: one line per epoch, under a tqdm bar in a terminal.

The metrics go on their own line rather than in the bar's postfix: tqdm cuts a bar to the
terminal's width, and on an 80-column terminal a postfix holding every metric lost the
validation ones. The bar keeps only what fits: epoch k/N, times and validation accuracy.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from engines.core import EpochStats
from engines.spec import RunSpec


class EpochProgress:
    """``with EpochProgress(spec) as p: … on_epoch=p.update`` — shows epoch k/N and metrics."""

    def __init__(self, spec: RunSpec, quiet: bool = False) -> None:
        self.spec = spec
        self.quiet = quiet or not sys.stderr.isatty()
        self.bar: tqdm | None = None

    def __enter__(self) -> EpochProgress:
        if not self.quiet:
            self.bar = tqdm(total=self.spec.epochs, desc=self.spec.label, unit="epoch")
        return self

    def update(self, stats: EpochStats) -> None:
        line = epoch_line(stats, self.spec.epochs)
        if self.bar is None:
            print(f"{self.spec.label} {line}", flush=True)
        else:
            self.bar.write(line, file=sys.stdout)
            self.bar.set_postfix_str(f"val_acc {stats.val_accuracy:.4f}", refresh=False)
            self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def epoch_line(stats: EpochStats, epochs: int) -> str:
    """``epoch 3/20: loss … acc … | val_loss … val_acc … | lr … | 1.2s``"""
    return (
        f"epoch {stats.epoch}/{epochs}: "
        f"loss {stats.train_loss:.4f} acc {stats.train_accuracy:.4f} | "
        f"val_loss {stats.val_loss:.4f} val_acc {stats.val_accuracy:.4f} | "
        f"lr {stats.lr:.1e} | {stats.epoch_seconds:.1f}s"
    )
