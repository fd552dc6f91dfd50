//! The structured error a node returns; the host adds the node id and type.

use abi_stable::{
    std_types::{ROption, RString},
    StableAbi,
};
use std::fmt;

/// What kind of failure; lets a UI colour the error and a caller decide whether to retry.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An input port got a value it cannot use (wrong shape, NaN, empty, wrong kind).
    InvalidInput,
    /// A parameter is missing, of the wrong type or out of range.
    InvalidParam,
    /// A file could not be read or written.
    Io,
    /// A model (TorchScript, metadata) is not what the node needs.
    Model,
    /// The run was cancelled.
    Cancelled,
    /// The node panicked; the panic was caught at the plugin boundary.
    Panic,
    /// Anything else.
    Internal,
}

/// A node's error: kind, message, and the port or parameter it concerns, if any.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct NodeError {
    /// What went wrong, broadly (a UI may colour by it).
    pub kind: ErrorKind,
    /// What went wrong, for people: name the port, parameter or file.
    pub message: RString,
    /// The input port, output port or parameter the error is about.
    pub location: ROption<RString>,
}

/// Result type of node code.
pub type NodeResult<T> = Result<T, NodeError>;

impl NodeError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        NodeError { kind, message: RString::from(message.into()), location: ROption::RNone }
    }
    /// An error about input port `port`.
    pub fn input(port: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message).at(port)
    }
    /// An error about parameter `param`.
    pub fn param(param: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParam, message).at(param)
    }
    /// A file could not be read or written; name the file.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }
    /// A model could not be loaded or run; name the model file.
    pub fn model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Model, message)
    }
    /// A bug: a contract between host and node was broken.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// The run was cancelled (what [`crate::Ctx::check_cancelled`] returns).
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }
    /// Names the port or parameter the error concerns.
    pub fn at(mut self, location: &str) -> Self {
        self.location = ROption::RSome(location.into());
        self
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            ROption::RSome(loc) => write!(f, "{:?} at '{}': {}", self.kind, loc, self.message),
            ROption::RNone => write!(f, "{:?}: {}", self.kind, self.message),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<tch::TchError> for NodeError {
    fn from(e: tch::TchError) -> Self {
        NodeError::internal(format!("libtorch: {e}"))
    }
}
