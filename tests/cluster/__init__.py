"""Tests on the cluster profile (scripts/stack up --cluster); run with -m cluster."""
