"""Pure data: custom-resource specs and status, phases, selectors, results.

Nothing here performs IO, so every other package may depend on it.
"""
