"""The in-cluster server: thin reconcilers between the custom resources and the engine.

Controllers translate a resource's spec into calls to the backup, restore and
storage packages and write the outcome back to its status; the pieces they
share (logging, metrics, health endpoints, leader election) live beside them.
"""
