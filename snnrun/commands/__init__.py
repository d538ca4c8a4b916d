"""Commands besides train/eval that are not run plumbing: ``snnrun bench`` and ``snnrun probe``."""
