//! Faults from below: power loss on a real filesystem, a full disk, injected I/O errors, a
//! read-only remount and running out of file descriptors.
