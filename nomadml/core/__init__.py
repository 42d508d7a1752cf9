"""The pure core: specs, rendering, plans, rollout decisions, gates and lifecycle
rules. Nothing here reaches the network or imports click, requests, docker or an
adapter: every function is a function of its arguments."""
