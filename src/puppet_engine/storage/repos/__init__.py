"""Repositories: the only SQL of the engine, one module per aggregate, asked in domain words."""
