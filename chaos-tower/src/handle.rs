//! How a layer's services hold its settings: a pointer copy, or one reference count.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A layer's settings as every clone of its service holds them.
///
/// `hyper` clones the outermost service for every request, so this is on the hot path.
/// [`Handle::Counted`] (what `build()` makes) costs one atomic increment per clone and is
/// freed with the last service; [`Handle::Static`] (`build_static()`) is a pointer copy,
/// for a layer built once at start-up and kept for the life of the process.
pub(crate) enum Handle<T: 'static> {
    Static(&'static T),
    Counted(Arc<T>),
}

impl<T> Handle<T> {
    pub(crate) fn counted(value: T) -> Handle<T> {
        Handle::Counted(Arc::new(value))
    }

    pub(crate) fn leaked(value: T) -> Handle<T> {
        Handle::Static(Box::leak(Box::new(value)))
    }
}

impl<T> Clone for Handle<T> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Handle::Static(s) => Handle::Static(s),
            Handle::Counted(a) => Handle::Counted(a.clone()),
        }
    }
}

impl<T> Deref for Handle<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Handle::Static(s) => s,
            Handle::Counted(a) => a,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
