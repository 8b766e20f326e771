//! What a panic inside redb while it opens the store file means. redb 2.6
//! does not return an error for a file written by redb 3 or later (it
//! panics while loading the allocator state), and release builds abort on
//! panic: without this the admin sees only "internal error: entered
//! unreachable code". Such a file comes from a newer build: a development
//! build before the move to redb 2.6, or a later Outguard that upgraded the
//! store, followed by a rollback to this one.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static OPENING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `open` (redb's open of the store file) with that explanation
/// attached to any panic it raises on this thread.
pub fn explain_panics<T>(open: impl FnOnce() -> T) -> T {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if OPENING.with(Cell::get) {
                tracing::error!("{NEWER_FORMAT}");
                eprintln!("outguard: {NEWER_FORMAT}");
            }
            next(info);
        }));
    });
    OPENING.with(|o| o.set(true));
    let out = open();
    OPENING.with(|o| o.set(false));
    out
}

const NEWER_FORMAT: &str = "store: redb failed while opening the store file: it was \
    most likely written by a newer store format than this build reads (redb 3 or later: \
    a development build before the move to redb 2.6, or a later Outguard before a \
    rollback). Boot the image that wrote it, or move outguard.redb aside to start with \
    an empty store.";
