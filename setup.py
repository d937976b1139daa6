"""Maps the design card's top-level folders onto the `dreamwire` import root.

pyproject.toml cannot express "every subpackage of this folder, renamed", so the list is
computed here; everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {
    "dreamwire.backend": "backend",
    "dreamwire.shared": "shared",
    "dreamwire.catalog": "models",
}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=dict(ROOTS))
