"""Leaders' digests of 1:1 cadence gaps: :mod:`.compose` (pure) and :mod:`.send` (delivery, state)."""
