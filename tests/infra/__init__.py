"""Validation of the infrastructure (Bicep, azd files, compose file) without the Bicep CLI."""
