"""The study's experiments, one folder each, mirroring ``workflow/rules/<name>.smk`` and a section of the paper: its
plan (which runs, from the config), its tables and statistics, its plots, its paper part and templates. No
experiment imports another's modules; shared machinery lives outside ``experiments/``."""
