//! Marks a store request can carry for any store: [`BackgroundWrite`]. They
//! travel in object_store's [`PutOptions::extensions`], so a store that does
//! not know a mark ignores it and decorators pass it through unchanged.

use object_store::{Extensions, PutOptions};

/// Marks a put as background work that may take longer so that foreground
/// writes do not wait behind it. The local folder store
/// (`FolderStore` in `storage::folder`) writes such puts in paced pieces; other
/// stores ignore the mark.
#[derive(Clone, Copy, Debug)]
pub struct BackgroundWrite;

impl BackgroundWrite {
    /// Put options carrying the mark.
    pub fn put_options() -> PutOptions {
        let mut extensions = Extensions::new();
        extensions.insert(BackgroundWrite);
        PutOptions {
            extensions,
            ..PutOptions::default()
        }
    }
}
