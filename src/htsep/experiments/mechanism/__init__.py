"""The mechanism experiments: relaxation Jacobian spectra of trained grid runs with own and swapped dt
(``spectra``), a dt mean x spread landscape of short runs (``plan``, ``landscape``), their figures (``plots``) and the
paper's Mechanism section (``paper``)."""
