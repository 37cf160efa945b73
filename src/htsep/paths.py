"""How numbers appear in the names of outputs."""


def fmt(x: float) -> str:
    """A number as it appears in folder names and labels: 0.30 -> '0.3', 1.0 -> '1'."""
    return f"{float(x):g}"
