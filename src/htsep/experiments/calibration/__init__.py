"""The calibration behind the calibrated protocol and the backprop setting, on validation data only: the search
(``plan``), its runs (``runs``), the table and selection (``selection``), figure (``plots``) and appendix
(``paper``)."""
