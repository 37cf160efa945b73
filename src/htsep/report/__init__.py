"""What the study shows, shared by every experiment: the figure registry (``figures``), the figures' style
(``style``), and TeX formatting, templates and the LaTeX build (``tex``)."""
