"""Singer tap for Flowfinity synchronization views."""

from importlib.metadata import version

# The version lives in pyproject.toml only; the installed package's metadata carries it here
# (and to `tap-flowfinity --version`, which the Singer SDK reads the same way).
__version__ = version("tap-flowfinity")
