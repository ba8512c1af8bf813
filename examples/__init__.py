"""Example processors for ``sandq run examples.tasks:<function>`` (run from the repository's root)."""
