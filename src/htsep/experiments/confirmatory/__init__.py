"""The preregistered primary tests (issue 24): the confirmatory runs of each contrast's arms on seeds never used before
(``plan``), the paired tests with their resolution (``tests``), the forest plot (``plots``) and the paper section
(``paper``)."""
