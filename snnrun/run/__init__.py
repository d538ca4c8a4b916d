"""Run plumbing: the run directory, checkpoints, metrics and console output, figures, reports
and sweep summaries."""
