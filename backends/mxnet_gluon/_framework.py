"""The one place that imports MXNet: its known import failures become one clear
ImportError (the registry turns it into BackendUnavailable), and its noise is filtered."""

from __future__ import annotations

import warnings

import numpy as np

NUMPY_FIX = (
    "MXNet 1.9.1 needs numpy<1.24 (it uses aliases such as np.bool that numpy 1.24 removed; "
    "this venv has numpy {version}): install numpy==1.23.5 in MXNet's own venv "
    "(`nox -s bench-mxnet` builds one)"
)


def _import_mxnet():
    """Import mxnet, turning its known failures into one ImportError naming the fix."""
    try:
        with warnings.catch_warnings():  # import-time DeprecationWarnings from mxnet's own modules
            warnings.simplefilter("ignore", DeprecationWarning)
            import mxnet
    except AttributeError as exc:  # numpy>=1.24: "module 'numpy' has no attribute 'bool'"
        if "numpy" not in str(exc):
            raise
        raise ImportError(f"{NUMPY_FIX.format(version=np.__version__)}; {exc}", name="mxnet") from exc
    except OSError as exc:  # libmxnet.so or one of its libraries cannot be loaded
        raise ImportError(f"MXNet's shared library cannot be loaded: {exc}", name="mxnet") from exc
    return mxnet


mx = _import_mxnet()
from mxnet import autograd, gluon, nd  # noqa: E402
from mxnet.gluon import nn, rnn  # noqa: E402

# Gluon noise that says nothing about the numbers (never anything that changes them).
warnings.filterwarnings("ignore", message=r"Parameter .* is not used by any computation")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mxnet(\.|$)")

__all__ = ["mx", "autograd", "gluon", "nd", "nn", "rnn", "NUMPY_FIX"]
