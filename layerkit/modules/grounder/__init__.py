"""modules grounding package."""
