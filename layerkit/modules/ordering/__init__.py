"""Occlusion ordering stages (role ``ordering``): front-to-back order of prompted objects."""
