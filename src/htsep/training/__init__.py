"""Training runs: EP runs, one or a stack (``runs``), the backprop reference (``backprop``), and the runs of a sweep on
a data subset (``sweeps``)."""
