"""Layer completion stages (role ``completion``): hidden parts of a finished stack filled in."""
