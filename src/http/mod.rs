//! HTTP/1.1 as far as WebSocket needs it: message heads (the Upgrade request and its
//! answer), gathered over segments, and message framing, to pass over the keep-alive
//! requests and responses that come before an Upgrade.

pub mod head;
pub mod message;
