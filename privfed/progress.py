"""Progress for every long step, on a terminal and in a log file alike.

Rich draws nothing until the end when its output is not a terminal (a CI log, ``make demo
> log``), so a long step looks like a hang there. :func:`progress_bar` gives rich's bars on
a terminal and otherwise a :class:`PlainProgress` with the same methods, which prints one
plain line per task every few seconds: ``inversion (full-model): 3/12, 41 s``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: seconds between two plain lines of the same task
PLAIN_INTERVAL = 5.0


def default_columns() -> tuple:
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


class PlainProgress:
    """The subset of :class:`rich.progress.Progress` privfed uses, as plain lines on a stream."""

    def __init__(self, stream=None, interval: float = PLAIN_INTERVAL, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = enabled
        self._tasks: dict[int, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> PlainProgress:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> PlainProgress:
        """A heartbeat thread repeats each unfinished task's line, so a long single step is not silence."""
        if self.enabled and self._heartbeat is None:
            self._stopped.clear()
            self._heartbeat = threading.Thread(target=self._beat, name="privfed-progress", daemon=True)
            self._heartbeat.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=1.0)
            self._heartbeat = None
        for task_id in list(self._tasks):
            self._print(task_id, force=True)

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                for task_id, task in list(self._tasks.items()):
                    if task["total"] is None or task["completed"] < task["total"]:
                        self._print(task_id, force=True, repeat=True)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, visible: bool = True,
                 **fields: Any) -> int:
        task_id = len(self._tasks)
        now = time.perf_counter()
        self._tasks[task_id] = {"description": description, "total": total, "completed": completed, "visible": visible,
                                "start": now, "printed": now, "last": None, "fields": fields}
        return task_id

    def update(self, task_id: int, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float | None = None, visible: bool | None = None, **fields: Any) -> None:
        task = self._tasks[task_id]
        if description is not None:
            task["description"] = description
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        if visible is not None:
            task["visible"] = visible
        task["fields"].update(fields)
        self._print(task_id)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def reset(self, task_id: int, *, total: float | None = None, description: str | None = None, **fields: Any) -> None:
        self._print(task_id, force=True)
        task = self._tasks[task_id]
        task.update(completed=0, start=time.perf_counter(), last=None)
        self.update(task_id, total=total, description=description, **fields)

    def line(self, task_id: int) -> str:
        task = self._tasks[task_id]
        total = f"/{int(task['total'])}" if task["total"] else ""
        extra = " ".join(str(v) for v in task["fields"].values() if v not in (None, ""))
        elapsed = time.perf_counter() - task["start"]
        return f"{task['description'].strip()}: {int(task['completed'])}{total}{', ' + extra if extra else ''}, {elapsed:.0f} s"

    def _print(self, task_id: int, force: bool = False, repeat: bool = False) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if not self.enabled or not task["visible"] or not task["description"].strip():
                return
            now = time.perf_counter()
            if not force and now - task["printed"] < self.interval:
                return
            if repeat and now - task["printed"] < self.interval:
                return
            text = self.line(task_id)
            if text == task["last"] and not repeat:
                return
            task["printed"], task["last"] = now, text
            self.stream.write(text + "\n")
            self.stream.flush()


def progress_bar(*columns: Any, enabled: bool = True, console: Console | None = None, transient: bool = False):
    """Rich bars on a terminal, :class:`PlainProgress` lines otherwise; nothing when ``enabled`` is False."""
    console = console or Console(stderr=True)
    if enabled and not console.is_terminal:
        return PlainProgress(console.file)
    return Progress(*(columns or default_columns()), console=console, disable=not enabled, transient=transient)
