//! The per-frame timeline of one connection, for `frames` (placeholder).

use super::events::FrameConsumer;

#[derive(Debug, Default)]
pub struct Timeline {}

impl FrameConsumer for Timeline {}
