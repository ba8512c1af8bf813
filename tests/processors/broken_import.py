"""A processor module that cannot be imported."""

raise RuntimeError("this module refuses to be imported")
