"""The grid: every (protocol, dataset, dt variant, seed) run and the backprop reference, as tables (``tables``),
stability statistics and tests (``stats``), figures (``plots``) and the results part of the paper (``paper``)."""
