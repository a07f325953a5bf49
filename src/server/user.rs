//! `-u USER`: drop privileges after binding, as beanstalkd does.

use std::ffi::CString;

/// Switches to the user's uid and primary gid (and its supplementary groups,
/// which beanstalkd forgets to set).
pub fn become_user(name: &str) -> Result<(), String> {
    let cname = CString::new(name).map_err(|_| "name contains NUL".to_string())?;
    // SAFETY: getpwnam returns a pointer to static storage or NULL; we copy
    // what we need before any other call that could overwrite it.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err("no such user".into());
    }
    // SAFETY: `pw` is not null, so it points to getpwnam's passwd record,
    // valid until the next getpw* call (there is none in between).
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: `cname` is a live NUL-terminated string; these calls change
    // the process's credentials and touch no memory of ours. They run at
    // startup on the one thread there is, so no thread runs as the old user.
    unsafe {
        if libc::initgroups(cname.as_ptr(), gid) != 0 {
            return Err(format!("initgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setgid(gid) != 0 {
            return Err(format!("setgid: {}", std::io::Error::last_os_error()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
