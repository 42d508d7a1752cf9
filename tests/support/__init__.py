"""Test doubles shared by the test files, imported as `support.<module>` (pytest puts
tests/ on sys.path for the root conftest). This file makes `support` a package so that
mypy, given the tests directory, names its modules the same way the tests import them."""
