"""Sensitivity: where dt acts on accuracy. One training key of a protocol changed at a time (the free phase T1, the
nudged phase T2, beta), uniform steps and heterogeneous dt trained paired by seed at each level, with a positive
control declared beside the contrast of heterogeneity (``plan``, ``analysis``, ``plots``, ``paper``)."""
