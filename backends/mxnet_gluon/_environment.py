"""The one place that imports MXNet: its engine is chosen first, its known import
failures become one clear ImportError (the registry turns it into BackendUnavailable),
and its noise is filtered."""

from __future__ import annotations

import os
import warnings
from importlib import metadata

import numpy as np

NUMPY_FIX = (
    "MXNet 1.9.1 needs numpy<1.24 (it uses aliases such as np.bool that numpy 1.24 removed; "
    "this venv has numpy {version}): install numpy==1.23.5 in MXNet's own venv "
    "(`nox -s bench-mxnet` builds one)"
)


def _cuda_build() -> bool:
    """Whether the installed MXNet is a CUDA build (`mxnet-cu112` and the like)."""
    return any((dist.metadata["Name"] or "").lower().startswith("mxnet-cu") for dist in metadata.distributions())


def choose_engine() -> str:
    """MXNet's execution engine, set before MXNet starts (it reads MXNET_ENGINE_TYPE once).

    A CPU-only build runs each operator in the calling thread (`NaiveEngine`). MXNet's
    default engine hands every operator to a worker thread whose OpenMP team sleeps
    between operators and is woken for the next one; on a small CPU that halved the
    LSTM's speed (docs/performance.md). There is nothing to overlap on
    a CPU: the operators themselves are multi-threaded. A CUDA build keeps the
    threaded engine (the naive one would wait for the GPU after every operator), and a
    value the user set wins."""
    if "MXNET_ENGINE_TYPE" not in os.environ and not _cuda_build():
        os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
    return os.environ.get("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice")


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


ENGINE = choose_engine()
mx = _import_mxnet()
from mxnet import autograd, gluon, nd  # noqa: E402
from mxnet.gluon import nn, rnn  # noqa: E402

# Gluon noise that says nothing about the numbers (never anything that changes them).
warnings.filterwarnings("ignore", message=r"Parameter .* is not used by any computation")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mxnet(\.|$)")

__all__ = ["mx", "autograd", "gluon", "nd", "nn", "rnn", "NUMPY_FIX", "ENGINE"]
