"""Standalone, stdlib-only programs that nomadml ships inside container images:
`bootstrap.py` (the model installer) and `serve.py` (the reference model server).
They must not import anything from nomadml."""
