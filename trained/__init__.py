"""Shipped model bundles (one folder each) and their licence/attribution notes."""
