"""Puppet Engine: autonomous AI agents with personas on X (Twitter) and Solana."""

__version__ = "0.1.0"
