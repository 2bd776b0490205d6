"""Pure cryptography: age format, field AEAD, sealing, secret sharing."""
