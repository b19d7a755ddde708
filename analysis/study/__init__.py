"""The human study's statistics: validated votes in, numbers and a report out.

:mod:`.votes` (validating an export table), :mod:`.attention` (exclusion rules),
:mod:`.choice` (the primary analysis: a conditional logit of the choices with a seeded
participant bootstrap), :mod:`.stats` (the paper's one-way ANOVA and Tukey HSD, the
repeated-measures ANOVA, Friedman, Wilcoxon/Holm, position bias), :mod:`.robustness`
(votes needed to reverse a conclusion, leave-one-out, per digit), :mod:`.pipeline` (all
of it on one table), :mod:`.report` (summary.json, report.md, plots), :mod:`.simulate`
(seeded synthetic exports), :mod:`.power` (simulation-based power and cost) and
:mod:`.preregister`.  Nothing here reads a database: that is the command layer's job
(:mod:`.cli`).
"""
