//! The examples' allocator setting reaches the option it means to.

#[path = "../examples/support/mod.rs"]
mod support;

#[test]
fn freed_memory_is_kept() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return; // the environment's setting wins, by design
    }
    // SAFETY: reading an integer option.
    let before = unsafe { libmimalloc_sys::mi_option_get(support::PURGE_DELAY) };
    // If this fails, mimalloc's option enum or default changed: update support/mod.rs.
    assert_eq!(
        before,
        support::DEFAULT_PURGE_DELAY_MS,
        "mi_option_purge_delay default"
    );
    support::keep_freed_memory();
    // SAFETY: reading an integer option.
    assert_eq!(
        unsafe { libmimalloc_sys::mi_option_get(support::PURGE_DELAY) },
        -1
    );
}
