"""modules refinement package."""
