"""`retail run`'s progress bar reads the fit pool's own per-item lines, through a real Dagster run's logger."""

from __future__ import annotations

import io

import dagster as dg

from retail_assets.progress import ProgressHandler, progress_logger


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_follows_the_item_lines_of_a_run():
    handler = ProgressHandler(Tty())
    handler.label = "[1/1] store 0001"

    @dg.op
    def fit(context):
        for k in range(1, 5):
            context.log.info(f"item {k}/4 SKU-{k}: 6 fits in 0.10s")  # what core/fitting/pool.py says

    @dg.logger
    def capture(_ctx):
        import logging

        logger = logging.Logger("t", level=logging.INFO)
        logger.addHandler(handler)
        return logger

    @dg.job(logger_defs={"progress": capture})
    def one():
        fit()

    assert one.execute_in_process(run_config={"loggers": {"progress": {}}}).success
    out = handler.stream.getvalue()
    assert "[1/1] store 0001 [#######" in out and out.rstrip().endswith("4/4 items")
    handler.clear()
    assert handler.stream.getvalue().endswith("\r")


def test_no_bar_when_not_a_terminal():
    stream = io.StringIO()
    handler = ProgressHandler(stream)
    import logging

    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "item 1/2 SKU: 6 fits", None, None))
    assert stream.getvalue() == ""
    assert isinstance(progress_logger, dg.LoggerDefinition)
