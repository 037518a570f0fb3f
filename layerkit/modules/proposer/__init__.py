"""Object proposal stages: image → object prompts for the automatic multi-layer mode."""
