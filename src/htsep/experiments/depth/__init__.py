"""Depth: the question at two hidden layers. A deeper network's protocol selected by the calibration rule on the
validation split, T1 chosen from the selected networks' free phase on validation images (one level unconverged, one
converged), standard EP, uniform and heterogeneous dt trained paired by seed at both (``plan``, ``search``,
``analysis``, ``plots``, ``paper``)."""
