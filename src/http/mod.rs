//! HTTP/1.1 as far as WebSocket needs it: message heads (the Upgrade request and its
//! answer), gathered over segments.

pub mod head;
