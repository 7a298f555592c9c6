//! Multi-factor recovery codes (`/mf-recovery-codes`, `/mf-recovery`).

pub(crate) mod codes;
