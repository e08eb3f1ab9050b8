//! The wire protocol: an incremental request parser (multibulk and inline, with Redis'
//! limits and error texts) and reply encoding for RESP2 and RESP3.

pub mod reply;
pub mod request;
