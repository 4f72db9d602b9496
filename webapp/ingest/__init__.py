"""Report ingestion: parse (report.py), fingerprint errors (fingerprint.py), write batches (writer.py)."""
