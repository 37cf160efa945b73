"""The stability frontier: failure probability along a stress axis per dt variant, sharded (``plan``), its
statistics (``stats``: binomial GLMs, critical levels, resolution), figure (``plots``) and paper section (``paper``)."""
