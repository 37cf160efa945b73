"""The dt mean x spread factorial on full data (issue 24): which cells (``plan``), the runs' table and the mixed-model
effects of the mean and of the spread at a matched mean, with the failures (``analysis``), its figure (``plots``) and
the paper section (``paper``)."""
