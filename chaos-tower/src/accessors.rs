//! What every middleware service of this crate has besides `Service`: `Debug` (the inner
//! service and the target) and the inner service's accessors, written once.

/// `Debug`, `get_ref`, `get_mut` and `into_inner` for a middleware `$ty<S>` with fields
/// `inner: S` and `shared` (whose `target` names it).
macro_rules! middleware_accessors {
    ($ty:ident) => {
        impl<S: ::std::fmt::Debug> ::std::fmt::Debug for $ty<S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("inner", &self.inner)
                    .field("target", &self.shared.target)
                    .finish_non_exhaustive()
            }
        }

        impl<S> $ty<S> {
            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Consumes the middleware, giving back the inner service.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

pub(crate) use middleware_accessors;
