"""One small HTML kit: inline SVG charts (and, with them, the page templates)."""
