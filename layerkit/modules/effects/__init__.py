"""Visual effects (cast shadows, reflections) moved into the object's layer (role ``effects``)."""
