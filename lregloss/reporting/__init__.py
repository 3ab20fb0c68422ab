"""Sweep reports: a table of every job's settings and final metrics, and plots, from what the runs wrote."""

from lregloss.reporting.report import Report, make_report

__all__ = ["Report", "make_report"]
