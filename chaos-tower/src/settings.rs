//! How a layer's services hold its settings: a pointer copy (`build_static`), or one
//! reference count (`build`).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A layer's settings as every clone of its service holds them.
///
/// `hyper` clones the outermost service for every request, so this is on the hot path.
/// [`Settings::Counted`] (what `build()` makes) costs one atomic increment per clone and is
/// freed with the last service; [`Settings::Static`] (`build_static()`) is a pointer copy,
/// for a layer built once at start-up and kept for the life of the process.
pub(crate) enum Settings<T: 'static> {
    Static(&'static T),
    Counted(Arc<T>),
}

impl<T> Settings<T> {
    pub(crate) fn counted(value: T) -> Settings<T> {
        Settings::Counted(Arc::new(value))
    }

    pub(crate) fn leaked(value: T) -> Settings<T> {
        Settings::Static(Box::leak(Box::new(value)))
    }
}

impl<T> Clone for Settings<T> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Settings::Static(s) => Settings::Static(s),
            Settings::Counted(a) => Settings::Counted(a.clone()),
        }
    }
}

impl<T> Deref for Settings<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Settings::Static(s) => s,
            Settings::Counted(a) => a,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Settings<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
