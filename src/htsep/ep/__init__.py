"""The model: layered EP with one time step per neuron (``model``), the dt distributions (``timesteps``), the
fused CPU relaxation (``fused`` + ``csrc/``) and relaxation dynamics (``dynamics``: convergence, dead units, Jacobian
spectra). Imports nothing from training, experiments or report."""
