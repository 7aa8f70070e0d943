"""Failure drills: fake dependencies that inject faults on demand, for tests and rehearsals."""
