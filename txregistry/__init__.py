"""txregistry: a container image registry (OCI Distribution Spec v1.1) on Twisted."""

# The one place the version is written: setup.py reads it from here, and
# ``txregistry --version`` and ``twistd txregistry --version`` print it.
__version__ = "0.1.0"


def versionLine():
    """What C{--version} prints."""
    import platform

    import twisted

    return "txregistry %s (Twisted %s, Python %s)" % (__version__, twisted.__version__, platform.python_version())
