"""Per-epoch progress for the command line: a tqdm bar, or one plain line per epoch."""

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
        metrics = (
            f"loss {stats.train_loss:.4f} acc {stats.train_accuracy:.4f} | "
            f"val_loss {stats.val_loss:.4f} val_acc {stats.val_accuracy:.4f} | "
            f"lr {stats.lr:.2e} | {stats.epoch_seconds:.1f}s"
        )
        if self.bar is None:
            epoch = f"epoch {stats.epoch}/{self.spec.epochs}"
            print(f"{self.spec.label} {epoch}: {metrics}", flush=True)
        else:
            self.bar.set_postfix_str(metrics, refresh=False)
            self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
