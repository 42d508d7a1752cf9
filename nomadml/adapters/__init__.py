"""Adapters: the only code that talks to the outside world (Nomad's HTTP API and
event stream, Nomad Variables, the docker engine, the image registry, webhooks).
They import the core, never the engine or the CLI."""
