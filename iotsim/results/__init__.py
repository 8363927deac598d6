"""Results: tidy tables from a run and the atomic writer of the results folder."""

from iotsim.results.tables import events_table, nodes_table, packets_table, summary_table
from iotsim.results.writer import write_results

__all__ = ["write_results", "summary_table", "nodes_table", "events_table", "packets_table"]
