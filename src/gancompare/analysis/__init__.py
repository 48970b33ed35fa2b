"""From runs to answers: the tidy table of runs, comparisons, the results tables and page,
sweeps."""
