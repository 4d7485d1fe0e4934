//! Test-only sabotage (cargo feature `sabotage`, off by default, never in release builds): when
//! switched on by the node at start, a retried command is executed again instead of returning
//! its stored result, so a transfer is applied twice (violates L3). The chaos harness's
//! negative control must catch it. Without the feature `double_apply` is a constant `false`.
//! A release build with the feature does not compile.

#[cfg(all(feature = "sabotage", not(debug_assertions)))]
compile_error!("feature `sabotage` is for debug builds of the chaos tests only, never release");

#[cfg(feature = "sabotage")]
static DOUBLE_APPLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the double-apply sabotage on or off (feature `sabotage` only).
#[cfg(feature = "sabotage")]
pub fn set_double_apply(on: bool) {
    DOUBLE_APPLY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// True when retried commands must be applied again (always false without the feature).
#[inline]
pub fn double_apply() -> bool {
    #[cfg(feature = "sabotage")]
    {
        DOUBLE_APPLY.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "sabotage"))]
    {
        false
    }
}
