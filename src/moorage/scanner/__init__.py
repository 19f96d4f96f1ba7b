"""Vulnerability scanner infrastructure: layer reading, package inventories and matching."""
