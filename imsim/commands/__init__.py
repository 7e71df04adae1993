"""One module per ``imsim`` command: ``register(subparsers, name)`` sets ``handler``."""
