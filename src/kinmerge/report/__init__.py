"""Plots and the self-contained HTML report of a run folder (breed, evolve, demo)."""
from kinmerge.report.html import write_report
from kinmerge.report.plots import write_run_plots

__all__ = ["write_report", "write_run_plots"]
