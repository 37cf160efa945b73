"""Robustness: every trained grid and confirmatory EP model evaluated under perturbation (input noise, weight noise,
a free phase cut short, dt changed after training), compared paired by seed (``plan``, ``evaluate``, ``analysis``,
``plots``, ``paper``)."""
