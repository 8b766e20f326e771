"""Delivery tests: a package, so that its conftest does not shadow the
shared tests/conftest.py module that the relay-core tests import."""
