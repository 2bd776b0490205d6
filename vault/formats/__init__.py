"""Outside file formats: readers and writers for other tools, around one neutral item shape."""
