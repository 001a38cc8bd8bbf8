import re

from setuptools import find_packages, setup


def readVersion():
    # txregistry/__init__.py is the one place the version is written
    # (read, not imported: setup.py runs before the dependencies are in).
    with open("txregistry/__init__.py") as f:
        return re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M).group(1)


setup(
    name="txregistry",
    version=readVersion(),
    description="A container image registry (OCI Distribution Spec v1.1) on Twisted",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/txregistry.py"], "txregistry.ui": ["static/*"]},
    install_requires=[
        "twisted[tls]>=23.10",
        "klein>=23.5",
        "treq>=23.11",
        "pyyaml>=5.4",
        "zope.interface>=5",
        "sqlalchemy>=1.4",
        "botocore>=1.31",
        "bcrypt>=4",
        "PyJWT>=2.8",
        "cryptography>=42",
        "prometheus-client>=0.17",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "python-dxf>=12",
            "oras>=0.2",
            "hypothesis>=6",
            "psycopg2-binary>=2.9",
            "moto[server]>=5",
            "build>=1",
            "selenium>=4.10",
        ],
        "postgresql": ["psycopg2-binary>=2.9"],
    },
    entry_points={"console_scripts": ["txregistry = txregistry.cli:main"]},
)
