"""imsim: plan, teach and regression-test the Instant Messaging service of a
PortaSwitch-style platform (PortaSIP proxy, presence, PortaBilling)."""

__version__ = "0.1.0"

from imsim._hotpath import guard as _guard

_guard()
