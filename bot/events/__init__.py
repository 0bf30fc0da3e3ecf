"""Sans-I/O webhook verification and parsing: bytes + headers in, one normalised Event out."""
