//! A libtorch tensor crossing the plugin boundary by reference count.
//!
//! All plugins and the host share one libtorch (torch-sys links it dynamically), so an `at::Tensor*` made in one
//! module is valid in every other: handing one over costs a refcount bump, never a copy, and never leaves the
//! device.

use abi_stable::StableAbi;
use std::ffi::c_void;
use tch::Tensor;

/// An owned reference to a libtorch tensor (`at::Tensor*`). Cloning shares the storage.
#[repr(transparent)]
#[derive(StableAbi)]
pub struct TensorRef {
    ptr: *mut c_void,
}

// SAFETY: an at::Tensor handle may move between threads; libtorch's refcounts are atomic.
unsafe impl Send for TensorRef {}
unsafe impl Sync for TensorRef {}

impl TensorRef {
    /// Takes ownership of `tensor`.
    pub fn new(tensor: Tensor) -> Self {
        let mut tensor = tensor;
        let ptr = tensor.as_mut_ptr() as *mut c_void;
        std::mem::forget(tensor);
        TensorRef { ptr }
    }

    /// A new `tch::Tensor` sharing this tensor's storage (and autograd history).
    pub fn tensor(&self) -> Tensor {
        // SAFETY: `ptr` is a live at::Tensor owned by self; clone_from_ptr bumps its refcount.
        unsafe { Tensor::clone_from_ptr(self.ptr as *mut _) }
    }

    /// Gives the tensor back, without touching the refcount.
    pub fn into_tensor(self) -> Tensor {
        let ptr = self.ptr;
        std::mem::forget(self);
        // SAFETY: ownership of the at::Tensor handle moves from self to the returned Tensor.
        unsafe { Tensor::from_ptr(ptr as *mut _) }
    }
}

impl From<Tensor> for TensorRef {
    fn from(t: Tensor) -> Self {
        TensorRef::new(t)
    }
}

impl Clone for TensorRef {
    fn clone(&self) -> Self {
        TensorRef::new(self.tensor())
    }
}

impl Drop for TensorRef {
    fn drop(&mut self) {
        // SAFETY: self owns the handle; Tensor's Drop frees it (at_free).
        drop(unsafe { Tensor::from_ptr(self.ptr as *mut _) });
    }
}

impl std::fmt::Debug for TensorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.tensor();
        write!(f, "Tensor{:?}<{:?}, {:?}>", t.size(), t.kind(), t.device())
    }
}
