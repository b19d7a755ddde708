"""Analysis of the NormLIME study: the human-study statistics and the numerical benchmarks.

Human study (``normlime analyze``): :mod:`analysis.votes` (loading and validating the
study server's export), :mod:`analysis.attention` (exclusion rules),
:mod:`analysis.stats` (ANOVA, Tukey HSD, Friedman, Wilcoxon/Holm, position bias),
:mod:`analysis.pipeline` (all of it on one table), :mod:`analysis.report` (summary.json,
report.md, plots) and :mod:`analysis.simulate` (seeded synthetic exports for tests and
benchmarks).

Deliberately empty of imports: importing the package (e.g. to compose the command line)
loads neither pandas, scipy, matplotlib nor torch.
"""
