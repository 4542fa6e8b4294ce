"""Model kinds, one module each (suite/protocol/components.py's ModelKind): a parameter layout evaluated
functionally. `functional` (FunctionalModel), `grouped` (a batch of tasks at once) and `layers` (the torch modules
the kinds build) are shared."""
SUPPORT = ("functional", "grouped", "layers")
