"""Interoperability with other tools: NIR export and import."""
