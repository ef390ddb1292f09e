"""Test and demo harness: throwaway PostgreSQL servers and Meltano runs against them.

The end-to-end tests and `make demo` need a real PostgreSQL and a real `meltano run`, because
the tap's durability promise (a bookmark is stored only after target-postgres committed the
records before it; docs/contract.md) can only be checked against the real pieces.
"""
