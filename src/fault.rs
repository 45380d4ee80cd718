//! Faults provoked on purpose by the end-to-end tests, in debug builds only.
//!
//! A bad day has to be tested, not assumed away (ARCHITECTURE.md): a panic
//! in the middle of a file cannot be produced from outside the process
//! without a bug to find, so the test binary can be told to panic at a
//! named point. `PPAS_GATEWAY_FAULT=<point>:<text>[,…]` panics at `point`
//! for a subject (a file name) containing `text`. Release builds compile
//! [`hit`] to nothing: the variable has no effect on the shipped binary.

/// Panics when the environment asks for a fault at `point` for `subject`.
#[inline]
pub fn hit(point: &str, subject: &str) {
    if asked(point, subject) {
        panic!("fault injected at {point} for {subject}");
    }
}

/// Whether the environment asks for a fault at `point` for `subject`: the
/// caller then fails with an error of its own (where a failure, not a
/// panic, is the bad day to test). Always false in release builds.
#[inline]
pub fn asked(point: &str, subject: &str) -> bool {
    if cfg!(debug_assertions) {
        if let Ok(spec) = std::env::var("PPAS_GATEWAY_FAULT") {
            return spec.split(',').any(|one| {
                one.split_once(':')
                    .is_some_and(|(p, text)| p == point && !text.is_empty() && subject.contains(text))
            });
        }
    }
    false
}
