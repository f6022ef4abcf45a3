# The distribution's version (pyproject.toml reads it from here) and the User-Agent's.
__version__ = "0.3.0"
