"""Hooks: one module per service, each turning the service's answer into a JobStatus."""
