"""Tiny processors for the child-process tests, one per behaviour; the zygote imports them with the
tests directory as its working directory (``processors.basic:square``)."""
