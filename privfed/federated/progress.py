"""Rich progress display for training (round, client, batch, running loss) and the final table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from privfed.progress import progress_bar


class TrainingDisplay:
    """Two bars: rounds, and the batches of the party currently training. No-op when disabled."""

    def __init__(self, rounds: int, start_round: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = None
        if enabled:  # rich bars on a terminal, a plain line every few seconds in a log
            self._progress = progress_bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._rounds = self._progress.add_task("round", total=rounds, completed=start_round - 1, loss="")
            self._batches = self._progress.add_task("", total=1, loss="")

    def __enter__(self) -> TrainingDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def party(self, server_round: int, name: str, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._rounds, description=f"round {server_round}")
            self._progress.reset(self._batches, total=max(total, 1), description=f"  {name}", loss="")

    def batch(self, done: int, total: int, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._batches, completed=done, total=max(total, done, 1), loss=f"loss {loss:.4f}")

    def round_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._rounds)


def summary_table(summary: dict[str, Any]) -> Table:
    """Each client's final accuracy, AUC, epsilon and bytes sent, plus the global/server model."""
    table = Table(title=f"{summary['algorithm']}: round {summary['final_round']} of {summary['rounds']}")
    for column in ("party", "arch", "test acc", "test AUC", "epsilon", "bytes sent"):
        left = column in ("party", "arch")
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    for row in summary["clients"]:
        table.add_row(
            f"client {row['id']}", row["arch"], _fmt(row["test_accuracy"]), _fmt(row["test_auc"]),
            _fmt(row["epsilon"], "{:.2f}", "-"), f"{row['bytes_up_total']:,}",
        )
    for key, label in (("global", "global model"), ("server", "server model")):
        if summary.get(f"{key}_test_accuracy") is not None:
            table.add_row(label, "", _fmt(summary[f"{key}_test_accuracy"]), _fmt(summary[f"{key}_test_auc"]), "", "")
    return table


def _fmt(value: Any, pattern: str = "{:.3f}", missing: str = "n/a") -> str:
    return missing if value is None else pattern.format(value)
