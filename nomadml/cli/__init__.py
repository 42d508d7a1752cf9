"""The `nomadml` command line: thin commands over engine calls; output rendering
(plain lines, JSON lines) lives here. Nothing in the package but its entry points imports it."""
