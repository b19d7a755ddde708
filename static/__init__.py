"""Package data: the study pages' CSS, script and images, installed as
``study_server.static`` (pyproject.toml maps this folder there); nothing here is code."""
