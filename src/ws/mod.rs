//! WebSocket (RFC 6455): pure parsers (handshake, frame header, close payload) and the
//! state machines that consume them (one frame stream per direction, one session).

pub mod close;
pub mod counts;
pub mod deflate;
pub mod events;
pub mod extensions;
pub mod facts;
pub mod frame;
pub mod handshake;
pub mod packed;
pub mod session;
pub mod stream;
mod texts;
pub mod timeline;

pub use session::WsSession;
