"""Test infrastructure: real database servers, a live studio, a browser."""
