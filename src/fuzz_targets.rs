//! In-process fuzz targets, shared by cargo-fuzz and the corpus replay test.
