//! placeholder
#[allow(unused_imports)]
use fantoccini::ClientBuilder;
