"""Where the dataset names have always been importable from; the code is `cnn_core.data`."""

from cnn_core.data import *  # noqa: F403  (the same public names, kept in one list there)
from cnn_core.data import __all__  # noqa: F401
