"""Results as data (JSON with provenance), merged across runs, rendered as one HTML page."""
