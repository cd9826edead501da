//! Scheduled work: pure functions of (ports, now), run by the `scheduled` handler in `glue`.

pub mod audit;
pub mod retention;
