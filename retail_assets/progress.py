"""A progress bar for `retail run`, fed by the same lines the per-store pipeline logs to the run (and the UI):
`item k/n <sku>: ...` from the fit pool. A Dagster logger, so the CLI reads the run's own story, not a second one."""

from __future__ import annotations

import logging
import sys

import dagster as dg

from retail_assets.core.fitting.pool import ITEM_LINE

WIDTH = 30


class ProgressHandler(logging.Handler):
    """Redraws one line on a terminal (`store 0001 [#####.....] 12/30 items`); prints nothing elsewhere, where
    the per-store lines are the record."""

    def __init__(self, stream=None) -> None:
        super().__init__(logging.INFO)
        self.stream = stream or sys.stderr
        self.label = ""
        self.drawn = False

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {}) or {}
        text = str(meta.get("orig_message") or record.getMessage())
        m = ITEM_LINE.search(text)
        if not m or not self.stream.isatty():
            return
        done, total = int(m.group(1)), int(m.group(2))
        filled = WIDTH * done // max(total, 1)
        self.stream.write(f"\r  {self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} items")
        self.stream.flush()
        self.drawn = True

    def attach_terminal(self) -> None:
        """Keep a copy of the terminal before any run starts: Dagster points a step's stderr at its compute
        log while the step runs, so the bar writes to its own duplicate of the descriptor."""
        import os

        if sys.stderr.isatty():
            self.stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)

    def clear(self) -> None:
        """Before a line of its own is printed: the bar's line is wiped."""
        if self.drawn:
            self.stream.write("\r" + " " * (len(self.label) + WIDTH + 24) + "\r")
            self.stream.flush()
            self.drawn = False


HANDLER = ProgressHandler()


@dg.logger(description="Draws a progress bar of the fit pool's per-item lines on the terminal of `retail run`.")
def progress_logger(_init_context) -> logging.Logger:
    logger = logging.Logger("retail_progress", level=logging.INFO)
    logger.addHandler(HANDLER)
    return logger
