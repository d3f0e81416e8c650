"""End-to-end workflows that chain the library's parts (the README's main job lives here)."""
