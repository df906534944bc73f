"""trapcount edge agent: runs on the trap. Must never import TensorFlow or Keras."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trapcount")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
