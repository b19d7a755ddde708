"""The study designs that measure whether an explanation *helps* people understand the
model (forward simulation, distinction, agreement: Hase & Bansal 2020; HIVE, Kim et al.
2022), with conditions assigned between participants; the paper's preference study lives
in ``analysis.study``.

``responses.py`` reads and filters the export (``explainers.votes_schema.RESPONSE_COLUMNS``),
``glmm.py`` fits ``glmer(correct ~ condition + (1|participant) + (1|item), binomial)`` by the
Laplace approximation, ``pipeline.py`` computes every number, ``report.py`` writes them,
``simulate.py`` draws exports with known effects, ``power.py`` and ``preregister.py`` plan a
study, and ``cli.py`` is what ``normlime analyze --responses``, ``normlime power --design``
and ``normlime preregister --design`` call.  Like ``analysis.study``, nothing here imports
torch or the study server.
"""
