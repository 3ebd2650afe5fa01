"""Analysis admin arrives with the analysis engine."""
