"""nvct: a conformance test suite for nested virtualization.

Data flows one way: profile -> stack -> boot -> records -> results ->
reports. Each arrow is one module of this package.
"""

__version__ = "0.1.0"
