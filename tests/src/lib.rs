//! QEMU harness for the integration tests.
