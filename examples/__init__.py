"""Example model lines that use nomadml as an operator would. Not part of the
product package: nothing under nomadml/ imports them."""
