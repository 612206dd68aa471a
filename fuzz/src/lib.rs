//! What the fuzz targets share: the properties checked on each boundary, and an independent
//! model of how a resolver reads a host name.

pub mod manifest;
pub mod net;
