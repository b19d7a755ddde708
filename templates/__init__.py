"""Package data: the study server's Jinja2 templates, installed as
``study_server.templates`` (pyproject.toml maps this folder there); nothing here is code."""
