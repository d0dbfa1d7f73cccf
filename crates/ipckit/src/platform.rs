//! Facts about the platform ipckit is running on.

/// The Wine version when this process runs under Wine, `None` otherwise.
///
/// Wine's `ntdll.dll` exports `wine_get_version`; real Windows does not. Tests use
/// this to skip only the assertions of behaviour that Wine is known not to
/// implement, and to say so.
///
/// # Examples
///
/// ```
/// if let Some(v) = ipckit::platform::wine_version() {
///     println!("running under Wine {v}");
/// }
/// ```
pub fn wine_version() -> Option<String> {
    crate::sys::wine_version()
}

/// True when this process runs under Wine.
pub fn is_wine() -> bool {
    wine_version().is_some()
}
