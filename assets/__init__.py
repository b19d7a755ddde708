"""Package data: the shipped CNN (``model/``) and maps bundle (``maps/mnist/``).

Installed as ``explainers.assets`` (pyproject.toml maps this folder there) and read
through :mod:`explainers.shipped`; nothing here is code.
"""
