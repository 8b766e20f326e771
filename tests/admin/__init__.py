"""Tests of the HTTPS admin face (a package, so that its conftest.py and
helpers never shadow the suite's tests/conftest.py)."""
