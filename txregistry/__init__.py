"""txregistry: a container image registry (OCI Distribution Spec v1.1) on Twisted."""

__version__ = "0.1.0"
