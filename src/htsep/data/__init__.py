"""Datasets: torchvision archives prepared into cached tensors (``prepare``), prepared splits as training reads them
and the validation split (``splits``), subsets of a split (``subsets``). Training imports ``splits`` only, never
torchvision."""
