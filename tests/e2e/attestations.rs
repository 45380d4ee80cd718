//! Visit-attestation files (spec §4) through the stateless check: the
//! `check` command driven as a user runs it ([`cli`]), the schema verdict
//! against libxml2 ([`oracle`]), and hostile bytes ([`props`]). Builders
//! and helpers in [`support`].

mod cli;
mod oracle;
mod props;
mod support;
