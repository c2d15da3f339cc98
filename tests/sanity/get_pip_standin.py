"""Offline stand-in for get-pip.py used by ansible-test (see tests/sanity/run)."""
# ansible-test bootstraps pip in each virtual environment it makes by running a get-pip script
# it downloads (ansible_test/_util/target/setup/requirements.py, bootstrap()) with pip's options
# and the packages it wants. Where that download cannot be made, this does the same with the
# standard library's ensurepip, then installs the packages from the package index.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
