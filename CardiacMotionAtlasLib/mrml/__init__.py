"""The only bridge between the library and MRML nodes (requires ``slicer-core`` or 3D Slicer)."""
