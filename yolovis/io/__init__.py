"""Video and file I/O at the edges: frame sources, the overlay writer, drawing, MOT rows."""
