"""Progress off a terminal: plain lines, throttled, with a heartbeat during one long step."""

from __future__ import annotations

import io
import time

from privfed.progress import PlainProgress, progress_bar


def test_plain_lines_name_the_step_count_and_time_and_repeat_during_a_long_step():
    stream = io.StringIO()
    with PlainProgress(stream, interval=0.05) as bar:
        task = bar.add_task("inversion (full-model)", total=4)
        bar.advance(task)
        time.sleep(0.3)  # one long step: the heartbeat keeps printing
        bar.advance(task, 3)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("inversion (full-model): 4/4, ") and lines[-1].endswith(" s")
    assert sum(line.startswith("inversion (full-model): 1/4") for line in lines) >= 2


def test_lines_are_throttled_and_finished_tasks_stay_quiet():
    stream = io.StringIO()
    with PlainProgress(stream, interval=60) as bar:
        task = bar.add_task("training", total=1000)
        for _ in range(1000):
            bar.advance(task)
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[-1]]  # only the final line


def test_off_a_terminal_progress_bar_is_plain_and_disabled_is_silent():
    from rich.console import Console

    stream = io.StringIO()
    assert isinstance(progress_bar(console=Console(file=stream)), PlainProgress)
    quiet = progress_bar(enabled=False, console=Console(file=stream))
    with quiet:
        quiet.advance(quiet.add_task("x", total=2))
    assert stream.getvalue() == ""
