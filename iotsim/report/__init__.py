"""Run report: static PNG plots (``write_plots``) and a self-contained HTML page (``write_report``)."""

from iotsim.report.html import write_report
from iotsim.report.plots import write_plots

__all__ = ["write_plots", "write_report"]
