"""Validation: structure, cardinality, bindings, invariants, references, profiles."""
