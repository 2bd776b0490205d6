"""Command groups of the `custody` CLI, one module per resource."""
