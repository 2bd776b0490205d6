"""The HTTP face of Custody (FastAPI). Built with the API issue; it will call ``vault`` services
only, and map ``vault.errors`` to HTTP status codes in one table."""
