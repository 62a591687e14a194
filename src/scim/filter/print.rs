//! Printing filters back in strict RFC 7644 syntax. (stub: replaced by the real printer)
