"""One seam per external system; the only modules importing its SDK."""
