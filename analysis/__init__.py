"""Analysis of the NormLIME study, in two separate subpackages.

* :mod:`analysis.study` — the human study's statistics, on plain DataFrames
  (``normlime analyze``, ``normlime power``, ``normlime preregister``);
* :mod:`analysis.benchmarks` — the numerical benchmarks on the CNN, built on
  ``explainers`` (``normlime kar``, ``normlime occlusion``);
* :mod:`analysis.reproduce` — ``normlime reproduce``, which runs both into one report.

Deliberately empty of imports: importing the package (e.g. to compose the command line)
loads neither pandas, scipy, matplotlib nor torch.
"""
