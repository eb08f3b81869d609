"""Labelled progress bars in mmengine's style for the long steps of the inference tools."""
import sys
import time
from typing import Iterable, Iterator, Optional, TextIO, TypeVar

from mmengine.utils import ProgressBar

T = TypeVar('T')
LABEL_WIDTH = 9


class _LabelledFile:
    """Stream that writes ``label`` in front of each redraw of an mmengine ``ProgressBar`` line.

    ``ProgressBar`` has no label and redraws its line with ``'\\r'``; putting the label after the
    carriage return keeps the bar's own output format unchanged.
    """

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.prefix = f'{label:<{LABEL_WIDTH}} '
        self.started = False

    def write(self, text: str) -> None:
        if text.startswith('\r'):
            text = '\r' + self.prefix + text[1:]
        elif not self.started:
            text = self.prefix + text
        self.started = True
        self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def track(iterable: Iterable[T], total: int, label: str, enable: bool = True,
          updates: int = 100, min_interval: float = 0.2,
          stream: Optional[TextIO] = None) -> Iterator[T]:
    """Yield the items of ``iterable`` while an mmengine ``ProgressBar`` labelled ``label`` runs.

    Like ``mmengine.utils.track_iter_progress`` plus a label, and the bar is redrawn at most
    ``updates`` times and at most every ``min_interval`` seconds (and once at the end): redrawing
    it for each of thousands of instances would cost more than the work it reports, and would fill
    logs with redraws of steps that take a fraction of a second.

    Args:
        iterable: The items.
        total: Their number (the bar's length).
        label: Name of the step, written in front of the bar.
        enable: False yields the items without any output.
        updates: Most redraws of the bar.
        min_interval: Least seconds between two redraws.
        stream: Where the bar goes; default ``sys.stdout`` (looked up at call time, so that
            pytest's capture sees it).
    """
    if not enable or total <= 0:
        yield from iterable
        return
    bar = ProgressBar(total, bar_width=30, file=_LabelledFile(stream or sys.stdout, label))
    step, pending, last = max(1, total // updates), 0, time.monotonic()
    try:
        for item in iterable:
            yield item
            pending += 1
            if pending >= step and time.monotonic() - last >= min_interval:
                bar.update(pending)
                pending, last = 0, time.monotonic()
        if pending:
            bar.update(pending)
    finally:
        bar.file.write('\n')
        bar.file.flush()
